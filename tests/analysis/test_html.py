"""The study page: self-contained, complete, and shown as intended by a real browser."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.html import ModelSection, Study, load_collapse, write_html
from atomcollapse.analysis.metrics import t_interval
from atomcollapse.analysis.plots import plot_tsne, report_plots
from atomcollapse.analysis.report import render_collapse
from atomcollapse.analysis.runs import find_runs, load_run
from atomcollapse.cli import main
from tests.analysis.browser import find_chromium, probe_page
from tests.analysis.runfactory import make_forgetting, make_history, make_run

SPEC = """name = "page-test"
description = "QM9 gap <tail> & friends"
strategies = ["scratch", "finetune", "mft"]
seeds = [0, 1, 2]
"""


def runs(root: Path) -> Path:
    """scratch and finetune x 3 seeds, mft x 2 seeds (an incomplete cell) with forgetting and
    learning curves, and one unfinished finetune run (left out)."""
    for strategy, ood in (("scratch", 0.03), ("finetune", 0.025), ("mft", 0.02)):
        for seed in range(2 if strategy == "mft" else 3):
            extra = {}
            if strategy == "mft":
                extra = {"forgetting": make_forgetting(force_after=90 + seed, force_before=80,
                                                       energy_after=12, energy_before=10)}  # fmt: skip
            make_run(root, strategy=strategy, seed=seed, id_mae=0.004 + 0.0005 * seed,
                     ood_mae=ood + 0.001 * seed, history=make_history(4, final_mae=0.005),
                     **extra)  # fmt: skip
    make_run(root, strategy="finetune", seed=7, finished=False)
    return root


def collapse_folder(root: Path) -> Path:
    """A ``collapse --out`` folder: the table and one t-SNE figure of two models."""
    root.mkdir(parents=True)
    rows = [{"model": m, "set": "atoms", "n": 60, "dim": 8, "db_tsne": db, "db_tsne_ratio": db / 0.5,
             "db_raw": 2 * db, "db_raw_ratio": db / 0.5, "w1_per_dim": 0.1, "w1_sliced": 0.05,
             "cka": 0.9} for m, db in (("pretrained", 0.5), ("mft s0", 0.7))]  # fmt: skip
    (root / "collapse.json").write_text(render_collapse(rows, "json"))
    (root / "notes.txt").write_text("t-SNE of atoms (60): scikit-learn, Barnes-Hut\n")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    coords = {m: rng.normal(size=(60, 2)) + labels[:, None] for m in ("pretrained", "mft s0")}
    plot_tsne(coords, labels, ["C4", "H", "O1"], root / "tsne_atoms", title="t-SNE of atoms")
    return root


def page(tmp_path: Path, *, spec: bool = True) -> Path:
    agg = aggregate([load_run(p) for p in find_runs([runs(tmp_path / "runs")])])
    figures = report_plots(agg, tmp_path / "plots")
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC)
    study = Study("page <test>", [ModelSection("painn", agg, figures)],
                  [load_collapse(collapse_folder(tmp_path / "collapse"), "painn / qm9")],
                  spec=spec_path if spec else None, problems=["not done: qm9/x/gap/mft/seed2"],
                  wall_seconds=3723.0)  # fmt: skip
    return write_html(study, tmp_path / "site" / "report.html")


def test_t_interval_is_the_student_t_interval_of_the_mean():
    low, high = t_interval([1.0, 2.0, 3.0], 0.95)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * std / sqrt(n), std = 1
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert t_interval([5.0, 5.0]) == (5.0, 5.0)
    assert all(math.isnan(x) for x in t_interval([1.0, float("nan")]))
    wider = t_interval([1.0, 2.0, 3.0], 0.99)
    assert wider[0] < low and wider[1] > high


def test_page_is_self_contained_and_complete(tmp_path):
    text = page(tmp_path).read_text()
    # no network, no other file: every image inline, every link inside the page or to a run
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    # the model's study and forgetting figures, mae, curves, tail, parity of the block and the
    # collapse t-SNE
    assert len(sources) == 7
    site = tmp_path / "site"
    links = [unquote(h) for h in re.findall(r'href="([^"#][^"]*)"', text)]
    assert links and all((site / h).is_dir() for h in links)
    assert {(site / h).resolve() for h in links} >= {
        p.resolve() for p in find_runs([tmp_path / "runs"])
    }
    # spec and provenance, escaped
    assert "page &lt;test&gt;" in text and "QM9 gap &lt;tail&gt; &amp; friends" in text
    digest = __import__("hashlib").sha256((tmp_path / "spec.toml").read_bytes()).hexdigest()
    assert digest in text and "d" * 64 in text and "s" * 64 in text and "p" * 64 in text
    assert "1 h 02 min 03 s for this invocation" in text
    # the ID/OOD table with confidence intervals, forgetting columns, and what is missing
    assert "ID MAE, the ID ceiling (meV)" in text and "95% CI (meV)" in text
    assert (
        "FF force MAE after / before" in text
        and "ID ceiling: the lowest ID MAE of the cells with every seed is 122.5" in text
    )
    assert "incomplete: 2 of 3 seeds" in text and "unfinished (no metrics.json)" in text
    assert "not done: qm9/x/gap/mft/seed2" in text
    assert "DB t-SNE / pretrained" in text and "t-SNE of atoms (60): scikit-learn" in text


def test_confidence_interval_cells_match_t_interval(tmp_path):
    text = page(tmp_path).read_text()
    # scratch ID MAE over seeds: 4.0, 4.5, 5.0 meV (0.004 Ha... in the report unit)
    rows = re.findall(r"<tr>(.*?)</tr>", text, re.S)
    scratch = next(r for r in rows if ">scratch<" in r)
    sorts = [float(x) for x in re.findall(r'data-sort="(-?[0-9.e+-]+)"', scratch)]
    from atomcollapse.units import factor

    values = [factor("Ha", "meV") * (0.004 + 0.0005 * s) for s in range(3)]
    assert pytest.approx(t_interval(values)[0], rel=1e-6) in sorts


def test_page_without_spec_says_so(tmp_path):
    text = page(tmp_path, spec=False).read_text()
    assert "A report of run directories (no benchmark spec)." in text


def test_cli_report_html_to_stdout_and_into_out(tmp_path, capsys):
    root = runs(tmp_path / "runs")
    folder = collapse_folder(tmp_path / "collapse")
    assert main(["report", str(root), "--format", "html", "--collapse", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("<!DOCTYPE html>") and printed.count("data:image/") == 7
    out = tmp_path / "out"
    assert main(["report", str(root), "--format", "html", "--out", str(out), "--no-plots",
                 "--title", "My study"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out == "" and "report.html" in captured.err
    text = (out / "report.html").read_text()
    assert "<title>My study</title>" in text and "data:image/" not in text
    assert main(["report", str(root), "--collapse", str(tmp_path)]) == 2
    assert "no collapse.json" in capsys.readouterr().err


@pytest.mark.slow
def test_page_in_a_real_browser(tmp_path):
    browser = find_chromium()
    if browser is None:
        pytest.skip("Chromium is not installed and could not be (.ci/run installs Debian's "
                    "`chromium` with apt-get when it is missing)")  # fmt: skip
    html_page = page(tmp_path)
    seen = probe_page(html_page, tmp_path / "chromium")
    (tmp_path / "chromium" / "probe.json").write_text(json.dumps(seen, indent=2))
    print(f"\npage {seen['page_bytes']:,} bytes; load event after {seen['load_ms']:.0f} ms; "
          f"screenshot {seen['screenshot']}")  # fmt: skip
    assert seen["errors"] == [] and seen["console_errors"] == []
    assert seen["resources"] == []  # nothing fetched: no file, no network
    # 1 block table + summary + collapse table, each visible with its rows
    assert len(seen["tables"]) == 3
    assert all(t["visible"] and t["rows"] > 0 for t in seen["tables"]), seen["tables"]
    assert len(seen["images"]) == 7
    for img in seen["images"]:
        assert img["inline"] and img["complete"] and img["width"] > 50 and img["visible"], img
    assert seen["sort"]["ascending"] and seen["sort"]["descending"], seen["sort"]
    shot = Path(seen["screenshot"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
