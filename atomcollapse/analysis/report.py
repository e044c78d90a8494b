"""Render an aggregate of runs as a rich table, Markdown, CSV, LaTeX or JSON.

One table per (dataset, split, target) block, so every header can carry the block's unit, then
the summary over targets and the list of runs left out. The best value of each column within a
block is marked (bold; ``*`` in plain text). Blocks with forgetting data get two more columns,
force-field force and energy MAE "after / before" adaptation (meV/Å, meV/atom).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd

from atomcollapse.analysis.aggregate import (
    CI_SUFFIX,
    CONFIDENCE,
    GAIN_COLUMNS,
    INTERVAL_METRICS,
    Aggregate,
    Cell,
    SummaryRow,
    has_forgetting,
)
from atomcollapse.analysis.convergence import FLAT_PERCENT
from atomcollapse.analysis.runs import FORGETTING_METRICS

FORMATS = ("table", "md", "csv", "latex", "json")
_GAIN_TITLES = {
    "gain_id_vs_scratch": "ID gain vs scratch",
    "gain_ood_vs_scratch": "OOD gain vs scratch",
    "gain_id_vs_finetune": "ID gain vs finetune",
    "gain_ood_vs_finetune": "OOD gain vs finetune",
}
CAPTION = (
    f"mean ± std over seeds (n = seeds averaged); {CONFIDENCE:.0%} CI = two-sided Student-t "
    "interval of the mean over seeds (- with one seed); bold: a column's best value, only where "
    f"its {CONFIDENCE:.0%} t interval over seeds excludes the runner-up's value; "
    "gain = 100·(base − method)/base, positive = lower error than the base"
)
FF_CAPTION = (
    "FF = MAE of the energy head on held-out force-field structures against their reference "
    "labels, after adaptation / of the untouched pretrained model (forgetting of the pretraining "
    "task); FF drift = the same MAE against the untouched pretrained model's own predictions "
    "(how far adaptation moved the pretrained function; 0 = unchanged)"
)
#: Table column -> header; the cell text is "after / before" of ``<key>_after``/``<key>_before``.
FF_COLUMNS = {
    "ff_force": "FF force MAE after / before (meV/Å)",
    "ff_energy": "FF energy MAE after / before (meV/atom)",
}
#: Table column -> header: the adapted energy head against the pretrained model's predictions.
DRIFT_COLUMNS = {
    "ff_force_drift": "FF force drift (meV/Å)",
    "ff_energy_drift": "FF energy drift (meV/atom)",
}
#: Unit suffix of the machine-readable (CSV/JSON) forgetting columns.
_FF_UNIT_TAG = {"ff_force": "meV_per_A", "ff_energy": "meV_per_atom"}


def _num(x: float, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.0f}"


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with four significant digits of the mean and the same decimals for std."""
    if mean is None or not math.isfinite(mean):
        return "-"
    decimals = _decimals(mean)
    text = f"{mean:.{decimals}f}"
    return text if std is None or not math.isfinite(std) else f"{text} ± {std:.{decimals}f}"


def _decimals(x: float) -> int:
    """Decimals that give four significant digits (at most 6, none above 1,000)."""
    return 3 if x == 0 else min(6, max(0, 3 - math.floor(math.log10(abs(x)))))


def ci_text(low: float, high: float) -> str:
    """``[low, high]``, both with the decimals of the larger bound; ``-`` without an interval."""
    if low is None or not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    d = _decimals(max(abs(low), abs(high)))
    return f"[{low:.{d}f}, {high:.{d}f}]"


def _value(key: str, x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.1f}" if key.startswith("gain") else _num(x, 3)


def _before(mean: float, std: float) -> str:
    """The pretrained model's value: one checkpoint, so a std of 0 is not worth printing."""
    return _pm(mean, std if std else math.nan)


def block_columns(
    unit: str, forgetting: bool = False, drift: bool = False
) -> list[tuple[str, str]]:
    """(key, header with unit) of a block table; ``forgetting`` adds the FF columns, ``drift``
    the FF drift ones (runs that measured it)."""
    return [
        ("strategy", "strategy"),
        ("n", "n"),
        ("id_mae", f"ID MAE ({unit})"),
        (f"id_mae{CI_SUFFIX}", f"ID {CONFIDENCE:.0%} CI ({unit})"),
        ("ood_mae", f"OOD MAE ({unit})"),
        (f"ood_mae{CI_SUFFIX}", f"OOD {CONFIDENCE:.0%} CI ({unit})"),
        ("ood_id_ratio", "OOD/ID (×)"),
        *((g, f"{_GAIN_TITLES[g]} (%)") for g in GAIN_COLUMNS),
        *(FF_COLUMNS.items() if forgetting else ()),
        *(DRIFT_COLUMNS.items() if forgetting and drift else ()),
        ("flags", "flags"),
    ]


def _block_columns(cells: list[Cell]) -> list[tuple[str, str]]:
    return block_columns(cells[0].unit, forgetting=has_forgetting(cells), drift=has_drift(cells))


def has_drift(cells: list[Cell]) -> bool:
    """Whether any run of a block measured the drift from the pretrained model."""
    return any(math.isfinite(c.mean("ff_force_drift")) for c in cells)


def summary_columns(agg: Aggregate) -> list[tuple[str, str]]:
    kinds = [("split_kind", "split kind")] if any(r.split_kind for r in agg.summary) else []
    return [
        ("dataset", "dataset"),
        *kinds,
        ("strategy", "strategy"),
        ("n_targets", "targets"),
        ("ood_id_ratio", "mean OOD/ID (×)"),
        *((g, f"mean {_GAIN_TITLES[g]} (%)") for g in GAIN_COLUMNS),
        ("ood_wins_vs_finetune", "OOD better than finetune (targets)"),
        ("flags", "flags"),
    ]


def _cell_text(c: Cell, key: str, bold: tuple[str, str]) -> str:
    if key == "strategy":
        return c.strategy
    if key == "n":
        return str(c.n_seeds)
    if key == "flags":
        return "; ".join(c.flags)
    if key in FF_COLUMNS:
        nan = (math.nan, math.nan)
        after = _pm(*c.stats.get(f"{key}_after", nan))
        before = _before(*c.stats.get(f"{key}_before", nan))
        if f"{key}_after" in c.best:
            after = f"{bold[0]}{after}{bold[1]}"
        return "-" if after == before == "-" else f"{after} / {before}"
    if key in DRIFT_COLUMNS:
        return _pm(*c.stats.get(key, (math.nan, math.nan)))
    if (interval := c.interval(key)) is not None:
        return ci_text(*interval)
    text = _pm(*c.stats[key]) if key in ("id_mae", "ood_mae") else _value(key, c.value(key))
    return f"{bold[0]}{text}{bold[1]}" if key in c.best else text


def _summary_text(r: SummaryRow, key: str) -> str:
    if key == "ood_wins_vs_finetune":
        return f"{r.ood_wins_vs_finetune[0]}/{r.ood_wins_vs_finetune[1]}"
    if key == "flags":
        return "; ".join(r.flags)
    if key in r.values:
        return _value(key, r.values[key])
    return str(getattr(r, key))


def _title(block: tuple[str, str, str], unit: str) -> str:
    return f"{block[0]} · split {block[1]} · {block[2]} [{unit}]"


def _excluded_lines(agg: Aggregate) -> list[str]:
    return [f"{r.path}: {r.strategy} seed {r.seed} left out: {why}" for r, why in agg.excluded]


def render_rich(agg: Aggregate, console) -> None:
    """Print the block tables, the summary and the exclusions to a rich console."""
    from rich.table import Table

    for block, cells in agg.blocks().items():
        # a terminal is too narrow for the intervals too: they are in every file format
        cols = [(k, h) for k, h in _block_columns(cells) if not k.endswith(CI_SUFFIX)]
        t = Table(*(h for _, h in cols), title=_title(block, cells[0].unit))
        for c in cells:
            t.add_row(*(_cell_text(c, k, ("[bold green]", "[/]")) for k, _ in cols))
        t.caption = (
            "mean ± std over seeds (95% t intervals: in the md, csv, json, LaTeX and HTML "
            "reports); bold: best per column where its 95% interval excludes the runner-up; "
            "gain = 100·(base − method)/base"
        )
        if has_forgetting(cells):
            t.caption += f"; {FF_CAPTION}"
        console.print(t)
    if agg.summary:
        cols = summary_columns(agg)
        t = Table(*(h for _, h in cols), title="Summary: averaged over targets")
        for r in agg.summary:
            t.add_row(*(_summary_text(r, k) for k, _ in cols))
        console.print(t)
    for line in _excluded_lines(agg):
        console.print(f"[yellow]{line}[/]", highlight=False, soft_wrap=True)


def render_markdown(agg: Aggregate) -> str:
    out: list[str] = []

    def table(headers: list[str], rows: list[list[str]]) -> None:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "---|" * len(headers))
        out.extend("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in rows)
        out.append("")

    for block, cells in agg.blocks().items():
        cols = _block_columns(cells)
        out += [f"### {_title(block, cells[0].unit)}", ""]
        table(
            [h for _, h in cols], [[_cell_text(c, k, ("**", "**")) for k, _ in cols] for c in cells]
        )
    out += [CAPTION[0].upper() + CAPTION[1:] + ".", ""]
    if any(has_forgetting(cells) for cells in agg.blocks().values()):
        out += [FF_CAPTION + ".", ""]
    if agg.summary:
        cols = summary_columns(agg)
        out += ["### Summary: averaged over targets", ""]
        table([h for _, h in cols], [[_summary_text(r, k) for k, _ in cols] for r in agg.summary])
    paired = _paired(agg)
    if paired:
        out += ["### Paired differences (a - b per seed: same seed = same batches; 95% t interval)",
                ""]  # fmt: skip
        table(["dataset", "split", "target", "a - b", "metric", "mean", "95% CI", "a better"],
              [[r["dataset"], r["split"], r["target"], r["comparison"], r["metric"],
                f"{_num(r['mean'])} {r['unit']}", f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
                f"{r['a_better']} of {r['n']}"] for r in paired])  # fmt: skip
        k = sum(r["a_better"] for r in paired if r["comparison"] == "mft - finetune"
                and r["metric"] == "ood_mae")  # fmt: skip
        n = sum(r["n"] for r in paired if r["comparison"] == "mft - finetune"
                and r["metric"] == "ood_mae")  # fmt: skip
        if n:
            out += [f"MFT better than finetune OOD in {k} of {n} (block, seed) pairs.", ""]
    conv = _convergence(agg)
    if conv:
        out += ["### Convergence (best validation MAE so far at 75% of the steps and at the end; "
                f"flat = less than {FLAT_PERCENT:g}% better over the last quarter)", ""]  # fmt: skip
        table(["dataset", "split", "target", "strategy", "seed", "train n", "steps",
               "val at 75%", "val at end", "gain (%)", "flat", "CPU (s)"],
              [[r["dataset"], r["split"], r["target"], r["strategy"], str(r["seed"]),
                "-" if r["n_train"] is None else f"{r['n_train']:,}",
                str(r["steps"]), f"{_num(r['val_start'])} {r['unit']}",
                f"{_num(r['val_end'])} {r['unit']}", _num(r["improvement_percent"], 2),
                "yes" if r["flat"] else "no", _num(r["cpu_seconds"], 5)] for r in conv])  # fmt: skip
        n_flat = sum(1 for r in conv if r["flat"])
        out += [f"Flat by the criterion: {n_flat} of {len(conv)} runs.", ""]
    excl = _excluded_lines(agg)
    if excl:
        out += ["### Runs left out", "", *(f"- {x}" for x in excl), ""]
    return "\n".join(out)


def _convergence(agg: Aggregate) -> list[dict[str, Any]]:
    from atomcollapse.analysis.convergence import convergence_rows

    return convergence_rows(r for c in agg.cells for r in c.runs)


def _paired(agg: Aggregate) -> list[dict[str, Any]]:
    from atomcollapse.analysis.stats import paired_rows

    return paired_rows(r for c in agg.cells for r in c.runs)


def _ff_name(metric: str) -> str:
    """``ff_force_after`` -> ``ff_force_after_meV_per_A``: these columns name their own unit."""
    return f"{metric}_{_FF_UNIT_TAG[metric.rsplit('_', 1)[0]]}"


def _cell_rows(agg: Aggregate) -> list[dict[str, Any]]:
    """One dict per cell; forgetting keys only for cells of blocks that have forgetting data."""
    rows = []
    for c in agg.cells:
        row: dict[str, Any] = {
            "dataset": c.dataset, "split": c.split, "target": c.target, "strategy": c.strategy,
            "unit": c.unit, "n_seeds": c.n_seeds, "seeds": " ".join(str(s) for s in c.seeds),
        }  # fmt: skip
        for m, (mean, std) in c.stats.items():
            if m not in FORGETTING_METRICS:
                row[f"{m}_mean"], row[f"{m}_std"] = mean, std
        for m in INTERVAL_METRICS:
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = c.intervals[m]
        row["ood_id_ratio"] = c.values["ood_id_ratio"]
        for g in GAIN_COLUMNS:
            row[f"{g}_pct"] = c.values[g]
        if any(m in c.stats for m in FORGETTING_METRICS):
            for m in FORGETTING_METRICS:
                row[f"{_ff_name(m)}_mean"], row[f"{_ff_name(m)}_std"] = c.stats[m]
            row["ff_data"] = " ".join(sorted({str(r.ff_data) for r in c.runs if r.ff_data}))
        row["best"] = " ".join(sorted(c.best))
        row["flags"] = "; ".join(c.flags)
        rows.append(row)
    return rows


def cells_frame(agg: Aggregate) -> pd.DataFrame:
    """One row per cell, machine-readable; ``unit`` applies to every MAE/RMSE column except the
    forgetting ones (``ff_*``), whose names carry their unit (meV_per_A, meV_per_atom)."""
    df = pd.DataFrame(_cell_rows(agg))
    last = ["best", "flags"]
    return df[[k for k in df.columns if k not in last] + last] if len(df) else df


def summary_frame(agg: Aggregate) -> pd.DataFrame:
    rows = []
    for r in agg.summary:
        row: dict[str, Any] = {"dataset": r.dataset, "split_kind": r.split_kind,
                               "strategy": r.strategy, "n_targets": r.n_targets}  # fmt: skip
        row["mean_ood_id_ratio"] = r.values["ood_id_ratio"]
        for g in GAIN_COLUMNS:
            row[f"mean_{g}_pct"] = r.values[g]
        row["ood_wins_vs_finetune"], row["ood_compared_with_finetune"] = r.ood_wins_vs_finetune
        row["flags"] = "; ".join(r.flags)
        rows.append(row)
    return pd.DataFrame(rows)


def render_csv(agg: Aggregate) -> str:
    buf = io.StringIO()
    cells_frame(agg).to_csv(buf, index=False, float_format="%.8g")
    return buf.getvalue()


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def report_dict(agg: Aggregate) -> dict[str, Any]:
    cells = _cell_rows(agg)
    summary = summary_frame(agg).to_dict(orient="records")
    excluded = [{"path": str(r.path), "strategy": r.strategy, "seed": r.seed, "reason": why}
                for r, why in agg.excluded]  # fmt: skip
    return _clean({"max_seeds": agg.max_seeds, "cells": cells, "summary": summary,
                   "paired": _paired(agg), "convergence": _convergence(agg),
                   "excluded": excluded})  # fmt: skip


def render_json(agg: Aggregate) -> str:
    return json.dumps(report_dict(agg), indent=2, allow_nan=False) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("^", r"\^{}"), ("±", r"$\pm$"), ("·", r"$\cdot$"),
                 ("−", "-"), ("×", r"$\times$"), ("<", r"$<$"), (">", r"$>$"),
                 ("Å", r"\AA{}")):  # fmt: skip
        s = s.replace(a, b)
    return s


_MARK = ("\x00", "\x01")
_TEXT_KEYS = {"strategy", "dataset", "split_kind", "flags"}


def _bold_tex(text: str) -> str:
    return _tex(text).replace(_MARK[0], r"\textbf{").replace(_MARK[1], "}")


def render_latex(agg: Aggregate) -> str:
    out: list[str] = [
        "% atomcollapse report: one table per dataset/split/target block",
        "% needs \\usepackage{booktabs} and \\usepackage{graphicx}; each table is scaled to the",
        "% column width (\\resizebox{\\columnwidth}), so it fits a two-column paper's column",
    ]

    def tabular(caption: str, cols: list[tuple[str, str]], rows: list[list[str]]) -> None:
        align = "".join("l" if k in _TEXT_KEYS else "r" for k, _ in cols)
        out.append(r"\begin{table}[ht]\centering\small")
        out.append(rf"\caption{{{_tex(caption)}}}")
        out.append(r"\resizebox{\columnwidth}{!}{%")
        out.append(r"\begin{tabular}{@{}" + align + "@{}}")
        out.append(r"\toprule")
        out.append(" & ".join(_tex(h) for _, h in cols) + r" \\")
        out.append(r"\midrule")
        out.extend(" & ".join(row) + r" \\" for row in rows)
        out.extend([r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""])

    for block, cells in agg.blocks().items():
        cols = _block_columns(cells)
        rows = [[_bold_tex(_cell_text(c, k, _MARK)) for k, _ in cols] for c in cells]
        caption = f"{_title(block, cells[0].unit)}: {CAPTION}"
        if has_forgetting(cells):
            caption += f"; {FF_CAPTION}"
        tabular(caption, cols, rows)
    if agg.summary:
        cols = summary_columns(agg)
        rows = [[_tex(_summary_text(r, k)) for k, _ in cols] for r in agg.summary]
        tabular("Summary averaged over targets", cols, rows)
    return "\n".join(out)


def render(agg: Aggregate, fmt: str) -> str:
    """Text of the report in ``fmt`` (md, csv, latex, json); ``table`` is printed by rich."""
    renderers = {
        "md": render_markdown,
        "csv": render_csv,
        "latex": render_latex,
        "json": render_json,
    }
    return renderers[fmt](agg)


COLLAPSE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("set", "set"),
    ("n", "n"),
    ("dim", "dim"),
    ("db_tsne", "DB t-SNE (index)"),
    ("db_tsne_ratio", "DB t-SNE / pretrained (×)"),
    ("db_raw", "DB raw (index)"),
    ("db_raw_ratio", "DB raw / pretrained (×)"),
    ("w1_per_dim", "W1 per dim (pretrained std)"),
    ("w1_sliced", "W1 sliced (pretrained std)"),
    ("cka", "CKA with pretrained (0-1)"),
)
COLLAPSE_CAPTION = (
    "DB = Davies–Bouldin index over the environment classes (higher = classes overlap more; "
    "ratio > 1 = more collapse than the pretrained model); W1 after standardising with the "
    "pretrained mean and std"
)


def collapse_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[k for k, _ in COLLAPSE_COLUMNS])


def _collapse_text(row: dict, key: str) -> str:
    v = row[key]
    return _num(v, 4) if isinstance(v, float) else str(v)


def render_collapse(rows: list[dict], fmt: str, console=None) -> str:
    """The collapse table as rich (printed to ``console``), md, csv, latex or json."""
    if fmt == "table":
        from rich.table import Table

        t = Table(*(h for _, h in COLLAPSE_COLUMNS), title="Representation collapse")
        for r in rows:
            t.add_row(*(_collapse_text(r, k) for k, _ in COLLAPSE_COLUMNS))
        t.caption = COLLAPSE_CAPTION
        console.print(t)
        return ""
    if fmt == "csv":
        buf = io.StringIO()
        collapse_frame(rows).to_csv(buf, index=False, float_format="%.8g")
        return buf.getvalue()
    if fmt == "json":
        return json.dumps(_clean({"rows": rows, "caption": COLLAPSE_CAPTION}), indent=2) + "\n"
    text = [[_collapse_text(r, k) for k, _ in COLLAPSE_COLUMNS] for r in rows]
    headers = [h for _, h in COLLAPSE_COLUMNS]
    if fmt == "md":
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in text]
        return "\n".join([*lines, "", COLLAPSE_CAPTION + ".", ""])
    lines = [r"\begin{table}[ht]\centering\small", rf"\caption{{{_tex(COLLAPSE_CAPTION)}}}",
             r"\resizebox{\columnwidth}{!}{%",
             r"\begin{tabular}{@{}ll" + "r" * (len(headers) - 2) + "@{}}", r"\toprule",
             " & ".join(_tex(h) for h in headers) + r" \\", r"\midrule",
             *(" & ".join(_tex(x) for x in r) + r" \\" for r in text),
             r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]  # fmt: skip
    return "\n".join(lines)
