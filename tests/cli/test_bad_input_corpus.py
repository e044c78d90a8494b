"""The bad-input corpus: every case is one command on a copy of the template workspace that must
end with exit code 2, exactly one line naming the file or setting, no traceback, and every byte
of the workspace (stores, split, checkpoint, runs, report, foreign folders) as it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from atomcollapse.cli import main
from tests.snapshot import snapshot

TRAIN = ["train", "--data", "mols", "--split", "split", "--target", "gap", "--strategy",
         "finetune", "--pretrained", "pre.pt", "--steps", "2", "--batch-size", "8", "--device",
         "cpu", "--no-progress"]  # fmt: skip
PRETRAIN = ["pretrain", "--data", "ff", "--hidden", "16", "--layers", "2", "--rbf", "8",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress"]  # fmt: skip


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    needle: str  # must be in the one error line (the file or setting it names)
    setup: Callable[[Path], None] | None = None


def _write(rel: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


CASES: list[Case] = []


def case(id: str, argv: list[str], needle: str, setup=None) -> None:
    CASES.append(Case(id, argv, needle, setup))


# -- --overwrite replaces only what atomcollapse made --------------------------------------------
for cmd, argv in {
    "report": ["report", "runs", "--format", "csv", "--no-plots"],
    "split": ["split", "make", "mols", "--method", "random"],
    "collapse": ["collapse", "--pretrained", "pre.pt", "runs/run", "--format", "csv"],
}.items():
    case(f"{cmd}-overwrite-foreign-folder", [*argv, "--out", "thesis", "--overwrite"], "thesis")
    case(f"{cmd}-overwrite-a-file", [*argv, "--out", "frames.xyz", "--overwrite"], "frames.xyz")
    case(f"{cmd}-exists-no-overwrite", [*argv, "--out", "thesis"], "already exists")
case("split-overwrite-a-store", ["split", "make", "mols", "--method", "random", "--out",
     "data/stores/ff", "--overwrite"], "a dataset artifact")  # fmt: skip
case("report-overwrite-a-split", ["report", "runs", "--out", "split", "--overwrite"],
     "a split artifact")  # fmt: skip
case("report-overwrite-a-run", ["report", "runs", "--out", "runs/run", "--overwrite"],
     "a run artifact")  # fmt: skip
case("collapse-overwrite-a-report", ["collapse", "--pretrained", "pre.pt", "runs/run", "--out",
     "report", "--overwrite"], "a report artifact")  # fmt: skip
case("subset-overwrite-foreign-folder", ["datasets", "subset", "mols", "--n", "4", "--out",
     "./thesis", "--overwrite"], "thesis")  # fmt: skip
case("pretrain-overwrite-foreign-file", [*PRETRAIN, "--out", "frames.xyz", "--overwrite"],
     "frames.xyz")  # fmt: skip
case("train-overwrite-foreign-folder", [*TRAIN, "--out", "thesis", "--overwrite"], "thesis")

# -- store names -------------------------------------------------------------------------------
for label, name in {"empty": "", "dot": ".", "dotdot": "..", "parent": "../x", "abs": "/tmp/x",
                    "nested": "a/b", "hidden": ".x", "space": " x"}.items():  # fmt: skip
    case(f"ingest-name-{label}", ["ingest", "extxyz", "frames.xyz", "--name", name, "--overwrite"],
         "invalid store name")  # fmt: skip
case("ingest-name-existing", ["ingest", "extxyz", "frames.xyz", "--name", "mols"],
     "already exists")  # fmt: skip
case("subset-name-dotdot", ["datasets", "subset", "mols", "--n", "4", "--out", ".."],
     "already exists")  # fmt: skip
case("label-name-dotdot", ["label", "xtb", "--data", "mols", "--name", "..", "--n-molecules", "2"],
     "--name")  # fmt: skip


# -- stores are checked when opened and re-hashed before use ------------------------------------
def _changed_target(ws: Path) -> None:
    import numpy as np

    f = ws / "data/stores/mols/target.gap.npy"
    a = np.load(f)
    a[5] += 0.01
    np.save(f, a)


def _truncate(rel: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        f = ws / rel
        f.write_bytes(f.read_bytes()[:-8])

    return setup


def _remove(rel: str) -> Callable[[Path], None]:
    return lambda ws: (ws / rel).unlink()


STORE_USERS = {
    "split-make": ["split", "make", "mols", "--method", "random", "--out", "new-split"],
    "split-verify": ["split", "verify", "split"],
    "datasets-show": ["datasets", "show", "mols"],
    "datasets-verify": ["datasets", "verify", "mols"],
    "train": [*TRAIN, "--out", "new-run"],
}
for user, argv in STORE_USERS.items():
    case(f"{user}-changed-target", argv, "target.gap.npy changed", _changed_target)
    case(f"{user}-truncated-positions", argv, "positions.npy: truncated",
         _truncate("data/stores/mols/positions.npy"))  # fmt: skip
    case(f"{user}-missing-numbers", argv, "numbers.npy: array file missing",
         _remove("data/stores/mols/numbers.npy"))  # fmt: skip
    case(f"{user}-corrupt-manifest", argv, "mols/manifest.json: corrupt manifest",
         _write("data/stores/mols/manifest.json", "{ oops"))  # fmt: skip
case("pretrain-changed-forces", [*PRETRAIN, "--out", "p2.pt"], "atom.forces.npy changed",
     lambda ws: _bump(ws / "data/stores/ff/atom.forces.npy"))  # fmt: skip
MFT = [("mft" if a == "finetune" else a) for a in TRAIN]
case("train-mft-truncated-ff", [*MFT, "--ff-data", "ff", "--out", "r2"],
     "ff/atom.forces.npy: truncated",
     _truncate("data/stores/ff/atom.forces.npy"))  # fmt: skip
case("datasets-show-missing-store", ["datasets", "show", "nope"], "data/stores/nope")
case("datasets-verify-object-array", ["datasets", "verify", "mols"], "holds Python objects",
     lambda ws: _object_array(ws / "data/stores/mols/ids.npy"))  # fmt: skip


def _bump(f: Path) -> None:
    import numpy as np

    a = np.load(f)
    a[0, 0] += 0.5
    np.save(f, a)


def _object_array(f: Path) -> None:
    import numpy as np

    n = len(np.load(f))
    np.save(f, np.array([object()] * n, dtype=object), allow_pickle=True)


# -- files that are not what they should be: one line naming them, nothing executed -------------
def _malicious(rel: str, unfinish: str | None = None) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        from tests.malicious import write_malicious_pt

        if unfinish:
            (ws / unfinish).unlink()
        write_malicious_pt(ws / rel, ws / "PWNED")  # the snapshot would show the marker

    return setup


def _torch_save(rel: str, obj) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        import torch

        torch.save(obj, ws / rel)

    return setup


RESUME = [*TRAIN, "--out", "runs/run", "--resume"]
for label, setup, _why in [
    ("malicious", _malicious("runs/run/state.pt", "runs/run/metrics.json"), "refusing to load"),
    ("foreign", lambda ws: (_torch_save("runs/run/state.pt", {"loop": 1})(ws),
                            (ws / "runs/run/metrics.json").unlink()), "not a resume state"),
    ("garbage", lambda ws: (_write("runs/run/state.pt", b"PK\x03\x04junk")(ws),
                            (ws / "runs/run/metrics.json").unlink()), "not a readable"),
]:  # fmt: skip
    case(f"train-resume-{label}-state", RESUME, "runs/run/state.pt", setup)
case("pretrain-resume-malicious-state", [*PRETRAIN, "--out", "p.pt", "--resume"], "p.pt.state.pt",
     _malicious("p.pt.state.pt"))  # fmt: skip
for label, setup in {
    "malicious": _malicious("bad.pt"),
    "garbage": _write("bad.pt", b"not a checkpoint"),
    "truncated": lambda ws: (ws / "bad.pt").write_bytes((ws / "pre.pt").read_bytes()[:500]),
    "foreign-dict": _torch_save("bad.pt", {"weights": 1}),
}.items():
    case(f"train-pretrained-{label}", [*TRAIN, "--out", "r", "--pretrained", "bad.pt"][:], "bad.pt",
         setup)  # fmt: skip
    case(f"checkpoint-show-{label}", ["checkpoint", "show", "bad.pt"], "bad.pt", setup)
    case(f"collapse-pretrained-{label}", ["collapse", "--pretrained", "bad.pt", "runs/run"],
         "bad.pt", setup)  # fmt: skip

# -- directories are not files -------------------------------------------------------------------
case("train-pretrained-is-dir", [*TRAIN, "--out", "r", "--pretrained", "thesis"],
     "thesis: is a directory")  # fmt: skip
case("train-config-is-dir", [*TRAIN, "--out", "r", "--config", "thesis"], "thesis: is a directory")
case("collapse-pretrained-is-dir", ["collapse", "--pretrained", "thesis", "runs/run"],
     "thesis: is a directory")  # fmt: skip
case("checkpoint-show-dir", ["checkpoint", "show", "thesis"], "thesis: is a directory")
case("ingest-extxyz-dir", ["ingest", "extxyz", "thesis", "--name", "x"], "thesis: is a directory")
case("ingest-extxyz-missing", ["ingest", "extxyz", "nope.xyz", "--name", "x"], "nope.xyz")
case("bench-spec-is-dir", ["bench", "thesis"], "thesis: is a directory")
case("bench-spec-missing", ["bench", "nope.toml"], "nope.toml")
case("split-show-dir", ["split", "show", "thesis"], "thesis")
case("split-verify-store", ["split", "verify", "data/stores/mols"], "not a split")

# -- reports name the file that is wrong --------------------------------------------------------
case("report-corrupt-metrics", ["report", "runs"], "runs/run/metrics.json: corrupt JSON",
     _write("runs/run/metrics.json", "{ half"))  # fmt: skip
case("report-binary-metrics", ["report", "runs"], "runs/run/metrics.json",
     _write("runs/run/metrics.json", b"\xff\xfe\x00"))  # fmt: skip
case("report-corrupt-manifest", ["report", "runs/run"], "runs/run",
     _write("runs/run/manifest.json", "[1, 2"))  # fmt: skip
case("report-no-runs", ["report", "thesis"], "no run directories found")
case("report-bad-format", ["report", "runs", "--format", "xml"], "--format")

# -- settings: the one named is the one that is wrong ------------------------------------------
for label, extra, needle in [
    ("lr-zero", ["--lr", "0"], "optim.lr' (--lr) must be positive"),
    ("lr-negative", ["--lr", "-1"], "optim.lr' (--lr) must be positive"),
    ("lr-below-end", ["--lr", "1e-7"], "(--lr) 1e-07 is below optim.lr_end"),
    ("batch-zero", ["--batch-size", "0"], "batch"),
    ("batch-auto-zero", ["--batch-size", "auto:0"], "batch"),
    ("epochs-negative", ["--epochs", "-1"], "epochs"),
    ("target-missing", ["--target", "homo"], "no target 'homo'"),
    ("strategy-unknown", ["--strategy", "magic"], "magic"),
    ("device-unknown", ["--device", "tpu"], "device"),
    ("seed-not-int", ["--seed", "abc"], "--seed"),
    ("split-missing", ["--split", "nope"], "nope"),
    ("data-missing", ["--data", "nope"], "nope"),
    ("mft-without-ff", ["--strategy", "mft"], "--ff-data"),
    ("resume-and-overwrite", ["--resume", "--overwrite"], "exclude each other"),
    ("out-is-file", ["--out", "frames.xyz"], "frames.xyz"),
    ("out-existing-run", ["--out", "runs/run"], "--resume"),
]:  # fmt: skip
    argv = [*TRAIN, *extra]
    if "--out" not in extra:
        argv += ["--out", "new-run"]
    case(f"train-{label}", argv, needle)
case("train-config-bad-toml", [*TRAIN, "--out", "r", "--config", "c.toml"], "c.toml",
     _write("c.toml", "lr = = 1"))  # fmt: skip
case("train-config-unknown-setting", [*TRAIN, "--out", "r", "--config", "c.toml"], "c.toml",
     _write("c.toml", "learning_rate = 1\n"))  # fmt: skip
case("pretrain-exists", [*PRETRAIN, "--out", "pre.pt"], "pre.pt: checkpoint already exists")
case("pretrain-out-is-dir", [*PRETRAIN, "--out", "thesis", "--overwrite"], "thesis")
case("pretrain-on-molecules", [*PRETRAIN[:2], "mols", *PRETRAIN[3:], "--out", "p.pt"], "mols")
case("subset-too-many", ["datasets", "subset", "mols", "--n", "1000", "--out", "big"], "1000")
case("subset-zero", ["datasets", "subset", "mols", "--n", "0", "--out", "none"], "subset size 0")
case("split-unknown-method", ["split", "make", "mols", "--method", "magic", "--out", "s"], "magic")
case("split-bad-fraction", ["split", "make", "mols", "--method", "random", "--id-frac", "2",
     "--out", "s"], "id")  # fmt: skip
case("collapse-bad-edges", ["collapse", "--pretrained", "pre.pt", "runs/run", "--edges", "x"],
     "--edges")  # fmt: skip
case("collapse-bad-max", ["collapse", "--pretrained", "pre.pt", "runs/run", "--max-per-class",
     "0"], "--max-per-class")  # fmt: skip
case("checkpoint-diff-missing", ["checkpoint", "diff", "pre.pt", "nope.pt"], "nope.pt")
case("datasets-show-traversal", ["datasets", "show", "../x"], "not found")


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, ws: Path, capsys):
    if c.setup is not None:
        c.setup(ws)
    before = snapshot(ws)
    capsys.readouterr()
    rc = main(["--data-root", "data", *c.argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert c.needle in err, err
    assert snapshot(ws) == before


def test_overwrite_replaces_an_artifact_of_the_same_kind(ws: Path):
    base = ["--data-root", "data"]
    assert main([*base, "report", "runs", "--out", "report", "--no-plots", "--overwrite",
                 "--format", "csv"]) == 0  # fmt: skip
    assert (ws / "report" / "manifest.json").is_file()
    assert main([*base, "split", "make", "mols", "--method", "random", "--out", "split",
                 "--overwrite"]) == 0  # fmt: skip
    assert main([*base, "ingest", "extxyz", "frames.xyz", "--name", "ff", "--overwrite"]) == 0
    assert main([*base, "ingest", "extxyz", "frames.xyz", "--name", "new"]) == 0
    assert sorted(p.name for p in (ws / "data" / "stores").iterdir()) == ["ff", "mols", "new"]
