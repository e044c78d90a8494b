"""Copy what a finished (or partly finished) ``atomcollapse bench`` folder shows into a folder
meant for the repository: the reports (md, csv, json, tex), the study-wide figures (PNG and PDF),
the collapse tables and figures and ``bench.json``; never checkpoints, run folders or samples.

    python benchmarks/publish.py results/evidence-cpu --to results/evidence-cpu-published

Absolute paths in the copied text files are rewritten relative to the repository (``--root``,
default: the current folder), the bench folder becoming the destination's path and the data root
``data``; a text file that still holds an absolute path afterwards stops the copy with its name
and the path (nothing of this machine goes into a commit). The destination is replaced as a
whole, and only once every file has been checked.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: Report files per model (``report/<model>/``).
REPORT_FILES = ("report.md", "report.csv", "report.json", "report.tex", "summary.csv",
                "manifest.json")  # fmt: skip
#: Figure stems per model (``report/<model>/plots/``), as PNG and PDF.
FIGURE_GLOBS = ("study", "forgetting", "drift", "curves_*", "mae_*")
#: Collapse files per (model, dataset, split).
COLLAPSE_FILES = ("collapse.md", "collapse.csv", "collapse.json", "collapse.tex", "notes.txt",
                  "manifest.json")  # fmt: skip
COLLAPSE_FIGURES = ("measures", "tsne_row_atoms", "tsne_row_edges")
TEXT = {".md", ".csv", ".json", ".tex", ".txt"}
#: An absolute path: a slash not after a word character, a closing bracket, ``:`` or ``/`` (so
#: units such as meV/Å and URLs are not paths), then a name and at least one more ``/``.
ABSOLUTE = re.compile(r"(?<![\w.)\]}:/])/(?:[\w.+-]+/)+[\w.+-]*")


class PublishError(SystemExit):
    """Bad input: one line on stderr (from :func:`main`), exit code 2, nothing published."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def selected(src: Path) -> list[Path]:
    """The files of ``src`` (a bench output folder) to publish, relative to it."""
    out = [Path("bench.json")] if (src / "bench.json").is_file() else []
    for model in sorted(p for p in (src / "report").glob("*") if p.is_dir()):
        out += [f.relative_to(src) for name in REPORT_FILES if (f := model / name).is_file()]
        for stem in FIGURE_GLOBS:
            for ext in (".png", ".pdf"):
                out += [f.relative_to(src) for f in sorted((model / "plots").glob(stem + ext))]
    for folder in sorted({p.parent for p in (src / "collapse").rglob("collapse.json")}):
        out += [f.relative_to(src) for name in COLLAPSE_FILES if (f := folder / name).is_file()]
        for stem in COLLAPSE_FIGURES:
            out += [
                f.relative_to(src)
                for ext in (".png", ".pdf")
                if (f := folder / (stem + ext)).is_file()
            ]
    return out


def compute(src: Path) -> dict:
    """Training seconds of the bench's finished cells (``bench.json``'s done cells; each run
    manifest's ``train_seconds``: the training loop over resumes, not the evaluation passes
    after it): CPU seconds in all and per strategy, and the wall-clock seconds of the same
    loops summed over cells (they depend on how loaded the machine was and count cells that
    ran side by side twice). Runs no cell of the spec claims (an older configuration's, say)
    are not counted."""
    bench = json.loads((src / "bench.json").read_text()) if (src / "bench.json").is_file() else {}
    by: dict[str, float] = {}
    n, wall = 0, 0.0
    for cell in bench.get("cells", []):
        if cell.get("state") != "done" or not cell.get("run_dir"):
            continue
        man = _run_path(src, cell["run_dir"]) / "manifest.json"
        if not man.is_file():
            continue
        m = json.loads(man.read_text())
        cpu = (m.get("train_seconds") or {}).get("cpu")
        if cpu is None:
            continue
        strategy = m.get("strategy")
        s = str(strategy.get("name") if isinstance(strategy, dict) else strategy)
        by[s] = by.get(s, 0.0) + float(cpu)
        wall += float((m.get("train_seconds") or {}).get("wall") or 0.0)
        n += 1
    total = sum(by.values())
    return {"finished_runs": n, "train_cpu_seconds": round(total, 1),
            "train_cpu_hours": round(total / 3600, 2),
            "train_wall_seconds_summed_over_cells": round(wall, 1),
            "by_strategy_cpu_seconds": {k: round(v, 1) for k, v in sorted(by.items())}}  # fmt: skip


def _run_path(src: Path, run_dir: str) -> Path:
    """A bench.json ``run_dir`` (absolute, or relative to the folder holding the bench folder
    or to the current one) as a path."""
    p = Path(run_dir)
    if p.is_absolute():
        return p
    for base in (src.parent, src.parent.parent, Path.cwd()):
        if (base / p).is_dir():
            return base / p
    return src / "runs" / p.name


def relative_text(text: str, replacements: list[tuple[str, str]]) -> str:
    """``text`` with each absolute prefix replaced where it is a whole path (followed by ``/``
    or by a character no path name holds), never inside a longer folder name."""
    for old, new in replacements:
        text = re.sub(re.escape(old) + r"/", (new + "/") if new else "", text)
        text = re.sub(re.escape(old) + r"(?![\w.+-])", new or ".", text)
    return text


def publish(
    src: Path, dest: Path, root: Path, data_root: Path, ran_in: Sequence[Path] = ()
) -> list[Path]:
    """Copy :func:`selected` files of ``src`` to ``dest``; ``ran_in``: the checkouts the bench
    (and its ``--collect``) ran from, if not ``root``, whose paths also become relative."""
    src, root = src.resolve(), root.resolve()
    if not (src / "bench.json").is_file() and not (src / "report").is_dir():
        raise PublishError(f"error: {src}: not a bench output folder (no bench.json or report/)")
    target = dest.resolve()
    try:
        dest_rel = str(target.relative_to(root))
    except ValueError:
        raise PublishError(
            f"error: {dest}: the destination must lie inside --root {root}"
        ) from None
    # longest first, so the bench folder wins over the repository holding it
    pairs = {str(src): dest_rel, str(data_root.resolve()): "data", str(root): "",
             **{str(Path(r).resolve()): "" for r in ran_in}}  # fmt: skip
    replacements = sorted(pairs.items(), key=lambda r: -len(r[0]))
    if target == src or src.is_relative_to(target) or (target / "runs").exists():
        raise PublishError(f"error: {dest}: holds a bench run (runs/); publish into another folder, "
                         "the destination is replaced as a whole")  # fmt: skip
    files = selected(src)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        stage = Path(tmp) / target.name
        for rel in files:
            out = stage / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if rel.suffix in TEXT:
                text = relative_text((src / rel).read_text(), replacements)
                left = ABSOLUTE.search(text)
                if left:
                    raise PublishError(f"error: {src / rel}: an absolute path is left after "
                                     f"rewriting ({left.group(0)}); nothing was published")  # fmt: skip
                out.write_text(text)
            else:
                shutil.copyfile(src / rel, out)
        (stage / "compute.json").write_text(json.dumps(compute(src), indent=2) + "\n")
        files.append(Path("compute.json"))
        if target.exists():
            shutil.rmtree(target)
        stage.rename(target)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="bench output folder (--out of atomcollapse bench)")
    ap.add_argument("--to", type=Path, required=True, help="destination folder (replaced)")
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root [.]")
    ap.add_argument("--data-root", type=Path, default=Path("data"), help="data root [data]")
    ap.add_argument(
        "--ran-in",
        type=Path,
        action="append",
        default=[],
        help="a checkout the bench or its --collect ran from, if not --root (a git worktree; "
        "repeatable)",
    )
    a = ap.parse_args(argv)
    try:
        files = publish(a.src, a.to, a.root, a.data_root, a.ran_in)
    except PublishError as e:
        print(e.message, file=sys.stderr)
        return 2
    size = sum((a.to / f).stat().st_size for f in files)
    print(f"published {len(files)} files ({size / 2**20:.1f} MiB) to {a.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
