"""A study as one self-contained web page (``report.html``): no network, no external file.

The page carries the spec and provenance (code version, spec hash, dataset/split/checkpoint
hashes, machine, wall time), per model the ID/OOD table with 95% confidence intervals over seeds
(the ID MAE is the ceiling that the OOD MAE is compared with) and the forgetting columns, the
summary over targets, the per-target figures (MAE bars, learning curves, tail and parity plots),
the collapse tables with their t-SNE figures, the runs left out and the cells not done, and a
link to every run directory (relative to the page). Figures are embedded as ``data:`` URIs (the
smaller of each figure's PNG and SVG); tables sort by a click on a header, in the page itself.
The layout lives in the Jinja2 template ``templates/report.html.j2``; this module only gathers
what goes in it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomcollapse.analysis.aggregate import Aggregate, Cell, has_forgetting
from atomcollapse.analysis.plots import slug
from atomcollapse.analysis.report import (
    CAPTION,
    COLLAPSE_CAPTION,
    COLLAPSE_COLUMNS,
    FF_CAPTION,
    FF_COLUMNS,
    _cell_text,
    _collapse_text,
    _excluded_lines,
    _pm,
    _summary_text,
    block_columns,
    has_drift,
    summary_columns,
)
from atomcollapse.analysis.runs import RunRecord

TEMPLATE = "report.html.j2"
#: Figure-file prefix (see :func:`~atomcollapse.analysis.plots.report_plots`) -> caption.
FIGURE_KINDS = {
    "mae": "MAE per strategy (mean ± std over seeds)",
    "curves": "Learning curves",
    "tail": "OOD error against the target value",
    "parity": "Parity (seeds pooled)",
}
#: Study-wide figures of a model (``plots.plot_study``, ``plots.plot_forgetting``) -> caption.
OVERVIEW_KINDS = {
    "study": "Every target: ID (pale) and OOD (solid) MAE per strategy, 95% t interval, one dot "
    "per seed, ID ceiling marked on each OOD bar",
    "forgetting": "Forgetting of the pretraining task: force-field MAE after / before adaptation",
    "drift": "Drift from the pretrained model: the energy head's force and energy MAE against the "
    "untouched pretrained model's own predictions (0 = unchanged)",
}
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class TableCell:
    """One table cell: its text, the key it sorts by, whether it is the column's best value,
    and links (label, href) shown after the text."""

    text: str
    sort: float | str | None = None
    best: bool = False
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[TableCell]]
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Image:
    caption: str
    uri: str
    source: str  # file name, for the alt text


@dataclass
class ModelSection:
    """One pretrained model's runs: its aggregate and its figure files (any folder)."""

    name: str
    agg: Aggregate
    figures: list[Path] = field(default_factory=list)


@dataclass
class CollapseSection:
    """One ``collapse`` output folder (collapse.json, notes.txt, tsne_*.png/svg)."""

    title: str
    folder: Path
    rows: list[dict[str, Any]]
    notes: list[str]
    figures: list[Path]


@dataclass
class Study:
    """Everything the page shows; ``spec`` is the spec file of a ``bench`` study (None for a
    report of run directories), ``problems`` the cells not done and other failures, and
    ``wall_seconds`` the time the study took (None: the sum of its runs' times is shown)."""

    title: str
    models: list[ModelSection]
    collapse: list[CollapseSection] = field(default_factory=list)
    spec: Path | None = None
    problems: list[str] = field(default_factory=list)
    wall_seconds: float | None = None
    description: str = ""


def load_collapse(folder: Path, title: str | None = None) -> CollapseSection:
    """A collapse output folder as written by ``collapse --out``."""
    folder = Path(folder)
    rows = json.loads((folder / "collapse.json").read_text())["rows"]
    notes_path = folder / "notes.txt"
    notes = notes_path.read_text().splitlines() if notes_path.is_file() else []
    figures = sorted(p for p in [*folder.glob("measures.*"), *folder.glob("tsne_*")]
                     if p.suffix in _MIME)  # fmt: skip
    return CollapseSection(title or folder.name, folder, rows, notes, figures)


def _collapse_caption(stem: str) -> str:
    if stem == "measures":
        return "Collapse measures per adapted model (dashed: the pretrained model)"
    if stem.startswith("tsne_row_"):
        return f"t-SNE, {stem.removeprefix('tsne_row_')}: pretrained | finetune | mft"
    return f"t-SNE, {stem.removeprefix('tsne_')}"


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (base64)."""
    payload = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{_MIME[Path(path).suffix]};base64,{payload}"


def smallest_variants(paths: Sequence[Path]) -> list[Path]:
    """Of each figure's PNG and SVG, the smaller file; figures in the order first seen."""
    by_stem: dict[Path, list[Path]] = {}
    for p in paths:
        if p.suffix in _MIME and p.is_file():
            by_stem.setdefault(p.with_suffix(""), []).append(p)
    return [min(v, key=lambda p: (p.stat().st_size, p.suffix)) for v in by_stem.values()]


def _link(target: Path, page_dir: Path) -> str:
    """A relative URL from the page's folder to ``target`` (POSIX separators)."""
    rel = os.path.relpath(Path(target).resolve(), page_dir.resolve())
    return Path(rel).as_posix().rstrip("/") + "/"


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def cell_table(cells: list[Cell], page_dir: Path) -> Table:
    """A block's table: the report's columns (a t interval after each MAE), run links."""
    unit = cells[0].unit
    forgetting = has_forgetting(cells)
    columns = block_columns(unit, forgetting=forgetting, drift=has_drift(cells))
    headers = [f"ID MAE, the ID ceiling ({unit})" if key == "id_mae" else head
               for key, head in columns] + ["runs"]  # fmt: skip
    rows = []
    for c in cells:
        row: list[TableCell] = [_cell(c, key) for key, _ in columns]
        links = tuple((f"seed {r.seed}", _link(r.path, page_dir)) for r in c.runs)
        row.append(TableCell("", len(links), links=links))
        rows.append(row)
    block = cells[0].block
    full = max(c.n_seeds for c in cells)
    ceiling = min((c for c in cells if c.n_seeds == full and math.isfinite(c.mean("id_mae"))),
                  key=lambda c: c.mean("id_mae"), default=None)  # fmt: skip
    note = ""
    if ceiling is not None:
        note = (f"ID ceiling: the lowest ID MAE of the cells with every seed is "
                f"{_pm(*ceiling.stats['id_mae'])} {unit} ({ceiling.strategy}); OOD/ID says how far "
                "each strategy's OOD error is above its own ID error.")  # fmt: skip
    caption = CAPTION + (f"; {FF_CAPTION}" if forgetting else "")
    title = f"{block[0]} · split {block[1]} · {block[2]} [{unit}]"
    return Table(title, headers, rows, caption, note)


def _cell(c: Cell, key: str) -> TableCell:
    text = _cell_text(c, key, ("", ""))
    if key in ("strategy", "flags"):
        return TableCell(text, text)
    if key == "n":
        return TableCell(text, c.n_seeds)
    if key in FF_COLUMNS:
        return TableCell(text, _finite(c.mean(f"{key}_after")), f"{key}_after" in c.best)
    if (interval := c.interval(key)) is not None:
        return TableCell(text, _finite(interval[0]))
    return TableCell(text, _finite(c.value(key)), key in c.best)


def summary_table(agg: Aggregate) -> Table | None:
    if not agg.summary:
        return None
    cols = summary_columns(agg)
    rows = []
    for r in agg.summary:
        row = []
        for key, _ in cols:
            text = _summary_text(r, key)
            sort: float | str | None = _finite(r.values[key]) if key in r.values else text
            if key == "ood_wins_vs_finetune":
                sort = r.ood_wins_vs_finetune[0]
            elif key == "n_targets":
                sort = r.n_targets
            row.append(TableCell(text, sort))
        rows.append(row)
    return Table("Summary: averaged over targets", [h for _, h in cols], rows)


def collapse_table(section: CollapseSection) -> Table:
    rows = []
    for r in section.rows:
        row = []
        for key, _ in COLLAPSE_COLUMNS:
            v = r.get(key)
            text = _collapse_text(r, key) if v is not None else "-"
            sort = _finite(v) if isinstance(v, (int, float)) else text
            row.append(TableCell(text, sort))
        rows.append(row)
    return Table(section.title, [h for _, h in COLLAPSE_COLUMNS], rows, COLLAPSE_CAPTION)


def block_figures(agg: Aggregate, figures: Sequence[Path]) -> dict[tuple[str, str, str], list]:
    """Each block's figures (by the ``<kind>_<block slug>`` file names), in FIGURE_KINDS order."""
    chosen = smallest_variants(figures)
    out: dict[tuple[str, str, str], list[Image]] = {}
    for block in agg.blocks():
        base = slug(*block)
        imgs = []
        for kind, caption in FIGURE_KINDS.items():
            for p in chosen:
                if p.stem == f"{kind}_{base}":
                    imgs.append(Image(caption, data_uri(p), p.name))
        out[block] = imgs
    return out


def provenance(study: Study) -> list[tuple[str, str]]:
    """(label, value) rows: code, spec, inputs' hashes, machine, wall time."""
    from atomcollapse.artifacts import code_version, now_utc

    runs = [r for m in study.models for c in m.agg.cells for r in c.runs]
    rows = [("report written", f"{now_utc()} by atomcollapse {code_version()}")]
    trained_by = sorted({r.code_version for r in runs if r.code_version})
    rows.append(("runs trained by", ", ".join(trained_by) or "-"))
    if study.spec is not None:
        digest = hashlib.sha256(study.spec.read_bytes()).hexdigest()
        rows.append(("spec", f"{study.spec.name} (sha256 {digest})"))
    for label, attr in (("dataset", "dataset_hash"), ("split", "split_hash"),
                        ("pretrained checkpoint", "pretrained_hash"), ("force-field data", "ff_hash")):  # fmt: skip
        pairs = sorted({_named(r, attr) for r in runs if getattr(r, attr)})
        if pairs:
            rows.append((f"{label} hashes (sha256)", "; ".join(pairs)))
    rows.append(("machine", _machine()))
    times = [t for r in runs if math.isfinite(t := r.wall_seconds)]
    parts = (
        []
        if study.wall_seconds is None
        else [f"{_duration(study.wall_seconds)} for this invocation"]
    )
    if times:
        parts.append(f"{_duration(sum(times))} summed over {len(times)} of the {len(runs)} runs")
    rows.append(
        ("wall time", "; ".join(parts) or "unknown (the runs carry no start and end times)")
    )
    return rows


def _named(r: RunRecord, attr: str) -> str:
    name = {"dataset_hash": r.dataset, "split_hash": f"{r.dataset}/{r.split}",
            "pretrained_hash": "", "ff_hash": r.ff_data or ""}[attr]  # fmt: skip
    h = str(getattr(r, attr))
    return f"{name} {h}".strip()


def _machine() -> str:
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.node()}: {platform.platform()}, {platform.processor() or platform.machine()}, "
            f"{cpus} usable CPU(s); Python {platform.python_version()}, torch {torch.__version__}")  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


def render_html(study: Study, page: Path) -> str:
    """The page's HTML; links to run directories are relative to ``page``'s folder."""
    import jinja2

    page_dir = Path(page).resolve().parent
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("atomcollapse.analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    models = []
    for m in study.models:
        figures = block_figures(m.agg, m.figures)
        blocks = [{"table": cell_table(cells, page_dir), "figures": figures[block]}
                  for block, cells in m.agg.blocks().items()]  # fmt: skip
        excluded = [(line, _link(r.path, page_dir)) for (r, _), line in
                    zip(m.agg.excluded, _excluded_lines(m.agg), strict=True)]  # fmt: skip
        incomplete = [f"{c.dataset} · {c.split} · {c.target} · {c.strategy}: {c.flags[0]}"
                      for c in m.agg.cells if c.flags and c.flags[0].startswith("incomplete")]  # fmt: skip
        overview = [Image(OVERVIEW_KINDS[p.stem], data_uri(p), p.name)
                    for p in smallest_variants(m.figures) if p.stem in OVERVIEW_KINDS]  # fmt: skip
        models.append({"name": m.name, "blocks": blocks, "summary": summary_table(m.agg),
                       "overview": overview,
                       "excluded": excluded, "incomplete": incomplete,
                       "n_runs": sum(c.n_seeds for c in m.agg.cells)})  # fmt: skip
    collapse = [{"table": collapse_table(s), "notes": s.notes, "link": _link(s.folder, page_dir),
                 "figures": [Image(_collapse_caption(p.stem), data_uri(p), p.name)
                             for p in smallest_variants(s.figures)]}
                for s in study.collapse]  # fmt: skip
    spec_text = study.spec.read_text() if study.spec is not None else None
    return env.get_template(TEMPLATE).render(
        title=study.title,
        description=study.description,
        provenance=provenance(study),
        spec_text=spec_text,
        models=models,
        collapse=collapse,
        problems=study.problems,
    )


def write_html(study: Study, page: Path) -> Path:
    """Render and write ``page`` atomically; returns it."""
    from atomcollapse.artifacts import write_text_atomic

    write_text_atomic(page, render_html(study, page))
    return Path(page)
