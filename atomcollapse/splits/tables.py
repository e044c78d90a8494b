"""A split manifest as rich tables (what ``split show`` prints): partitions, means, tails."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from atomcollapse.splits.artifact import PARTITIONS


def partition_table(m: dict[str, Any]) -> Table:
    """Per partition: structures, share, groups and the split target's mean and range."""
    groups = m.get("groups") or {}
    stats = m.get("target_stats", {})
    shown = [m["target"]] if m.get("target") else []
    n = m["dataset"]["n_structures"]
    t = Table("partition", "structures", "share")
    if groups:
        t.add_column(f"{groups['kind']}s")
        if "acyclic_share" in groups.get("train", {}):
            t.add_column("acyclic")
    for name in shown:
        t.add_column(f"{name} mean ({stats[name]['report_unit']})")
        t.add_column(f"{name} min..max")
    for p in PARTITIONS:
        c = m["counts"][p]
        row = [p, f"{c:,}", f"{c / n:.1%}"]
        if groups:
            row.append(f"{groups[p]['n_groups']:,}")
            if "acyclic_share" in groups[p]:
                row.append(f"{groups[p]['acyclic_share']:.1%}")
        for name in shown:
            s = stats[name][p]
            row += (
                [f"{s['mean_report']:.5g}", f"{s['min_report']:.5g}..{s['max_report']:.5g}"]
                if s["count"] else ["", ""]
            )  # fmt: skip
        t.add_row(*row)
    if m["counts"].get("excluded"):
        t.caption = f"{m['counts']['excluded']:,} structures in no partition (duplicates dropped)"
    return t


def means_table(stats: dict[str, Any]) -> Table:
    """Every target's mean per partition (report units), for splits without a target."""
    t = Table("target (mean)", "unit", *PARTITIONS)
    for name, st in stats.items():
        means = [f"{st[p]['mean_report']:.5g}" if st[p]["count"] else "-" for p in PARTITIONS]
        t.add_row(name, st["report_unit"], *means)
    return t


def tails_table(tails: dict[str, Any]) -> Table:
    """A property-tail split's OOD set: the lower and upper tails and their ranges."""
    t = Table(
        "ood_test tail", "count", f"range [{tails['unit']}]", f"range [{tails['report_unit']}]"
    )
    for name in ("lower", "upper", "rest"):
        e = tails[name]
        if not e["count"]:
            t.add_row(name, "0", "", "")
            continue
        t.add_row(
            name if name != "rest" else "(not ood)", f"{e['count']:,}",
            "{:.6g} .. {:.6g}".format(*e["range"]), "{:.6g} .. {:.6g}".format(*e["range_report"]),
        )  # fmt: skip
    t.caption = "two clean tails" if tails["two_clean_tails"] else "OOD is not just the two tails"
    return t
