"""A report folder: every text format, the figures and the self-contained ``report.html``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atomcollapse.analysis.aggregate import Aggregate

REPORT_FILES = {
    "md": "report.md",
    "csv": "report.csv",
    "latex": "report.tex",
    "json": "report.json",
}
HTML = "report.html"


def check_collapse_folders(folders: Sequence[Path]) -> None:
    """InputError unless every folder is a ``collapse --out`` folder (it has collapse.json)."""
    from atomcollapse.errors import InputError

    for folder in folders:
        if not (Path(folder) / "collapse.json").is_file():
            raise InputError("not a collapse output folder (no collapse.json)", file=folder)


def write_report(
    agg: Aggregate,
    out: Path,
    *,
    plots: bool,
    overwrite: bool,
    title: str | None = None,
    collapse: Sequence[Path] = (),
    inputs: dict | None = None,
) -> list[Path]:
    """Every format, ``summary.csv``, ``plots/``, ``report.html`` (with the figures and the
    given ``collapse`` output folders) and a manifest, written into ``out`` atomically."""
    from atomcollapse.analysis.html import ModelSection, Study, load_collapse, write_html
    from atomcollapse.analysis.plots import report_plots
    from atomcollapse.analysis.report import render, summary_frame
    from atomcollapse.artifacts import MANIFEST, atomic_directory, header, write_json_atomic

    with atomic_directory(out, kind="report", overwrite=overwrite) as tmp:
        write_json_atomic(tmp / MANIFEST, header("report", inputs=inputs))
        for fmt, name in REPORT_FILES.items():
            (tmp / name).write_text(render(agg, fmt))
        summary_frame(agg).to_csv(tmp / "summary.csv", index=False, float_format="%.8g")
        figures = report_plots(agg, tmp / "plots") if plots else []
        study = Study(title or f"atomcollapse report: {Path(out).name}",
                      [ModelSection(Path(out).name, agg, figures)],
                      collapse=[load_collapse(Path(c)) for c in collapse])  # fmt: skip
        write_html(study, tmp / HTML)
        rel = [*REPORT_FILES.values(), "summary.csv", HTML,
               *(str(f.relative_to(tmp)) for f in figures)]  # fmt: skip
    return [out / r for r in rel]


def html_page(
    agg: Aggregate, *, plots: bool, title: str, collapse: Sequence[Path] = (), page: Path
) -> str:
    """The HTML of ``report.html`` without writing a folder (figures made in a temporary one);
    run links are relative to ``page``."""
    import tempfile

    from atomcollapse.analysis.html import ModelSection, Study, load_collapse, render_html
    from atomcollapse.analysis.plots import report_plots

    with tempfile.TemporaryDirectory(prefix="atomcollapse-report-") as tmp:
        figures = report_plots(agg, Path(tmp)) if plots else []
        study = Study(title, [ModelSection("runs", agg, figures)],
                      collapse=[load_collapse(Path(c)) for c in collapse])  # fmt: skip
        return render_html(study, page)
