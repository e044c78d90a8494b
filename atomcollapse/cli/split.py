"""``atomcollapse split DATASET --method M --out P``, ``split show|verify|export P``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from atomcollapse.cli.common import console, state
from atomcollapse.errors import InputError


class _SplitGroup(TyperGroup):
    """A first word that is not a subcommand is the DATASET of ``make``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["make", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_SplitGroup,
    no_args_is_help=True,
    help="Build, show, verify and export OOD splits: `split DATASET --method M --out P`, "
    "`split show P`, `split verify P`, `split export P --format F --out D`.",
)


def _bandwidth(text: str) -> str | float:
    if text in ("scott", "silverman"):
        return text
    try:
        return float(text)
    except ValueError:
        raise InputError(f"bandwidth must be scott, silverman or a number, got {text!r}") from None


_HELP = {
    "method": "property-tail | scaffold | composition | size | random | matbench-fold",
    "n_ood": "OOD test size (default: property-tail min(10,000, n/10); others 10%).",
    "by": "Composition: element | chemsys | formula | cluster.",
    "ordering": "Scaffold: largest-first | balanced | smallest-to-test.",
}


@app.command("make")
def make(
    dataset: Annotated[str, typer.Argument(help="Store name or path.")],
    method: Annotated[str, typer.Option("--method", "-m", help=_HELP["method"])],
    out: Annotated[Path, typer.Option("--out", "-o", help="Split directory to write.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target.")] = None,
    n_ood: Annotated[int | None, typer.Option("--n-ood", help=_HELP["n_ood"])] = None,
    ood_frac: Annotated[
        float | None, typer.Option("--ood-frac", help="OOD size, fraction.")
    ] = None,
    id_frac: Annotated[float, typer.Option("--id-frac", help="Pool share -> id_test.")] = 0.05,
    val_frac: Annotated[float, typer.Option("--val-frac", help="Rest share -> val.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Split seed (BOOM: 42).")] = 42,
    dedupe: Annotated[str, typer.Option("--dedupe", help="group | drop | none.")] = "group",
    bandwidth: Annotated[str, typer.Option(help="scott | silverman | a number.")] = "scott",
    bandwidth_scaling: Annotated[
        str, typer.Option(help="sklearn (BOOM: not scaled by the spread) | scipy.")
    ] = "sklearn",
    ordering: Annotated[str, typer.Option(help=_HELP["ordering"])] = "largest-first",
    generic: Annotated[bool, typer.Option(help="Scaffold: generic scaffolds.")] = False,
    by: Annotated[str, typer.Option(help=_HELP["by"])] = "element",
    label: Annotated[str | None, typer.Option(help="Composition: held-out labels, a,b.")] = None,
    n_folds: Annotated[int | None, typer.Option(help="Composition: label folds (5).")] = None,
    fold: Annotated[int | None, typer.Option(help="Fold: composition or matbench.")] = None,
    n_clusters: Annotated[int, typer.Option(help="Composition cluster: k-means k.")] = 10,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing split.")] = False,
) -> None:
    """Make a split artifact (train, val, id_test, ood_test) of DATASET."""
    from atomcollapse.splits import SplitConfig
    from atomcollapse.splits.build import build_split

    labels = tuple(x.strip() for x in label.split(",") if x.strip()) if label else ()
    cfg = SplitConfig(
        method=method, target=target, n_ood=n_ood, ood_frac=ood_frac, id_frac=id_frac,
        val_frac=val_frac, seed=seed, dedupe=dedupe, bandwidth=_bandwidth(bandwidth),
        bandwidth_scaling=bandwidth_scaling, ordering=ordering, generic=generic, by=by,
        labels=labels, n_folds=n_folds, fold=fold, n_clusters=n_clusters,
    )  # fmt: skip
    split = build_split(dataset, cfg, out, data_root=state.data_root, overwrite=overwrite)
    c = split.counts()
    console.print(
        f"wrote {split.method} split of [bold]{split.manifest['dataset']['name']}[/] -> {out}: "
        + ", ".join(f"{k} {v:,}" for k, v in c.items() if v or k != "excluded")
        + f"; split hash {split.hash[:12]}"
    )


@app.command("show")
def show(path: Annotated[Path, typer.Argument(help="Split directory.")]) -> None:
    """Print a split's manifest: method, dataset, counts, groups and target statistics."""
    from atomcollapse.artifacts import made_by
    from atomcollapse.splits import load_split
    from atomcollapse.splits.tables import means_table, partition_table, tails_table

    split = load_split(path)
    m = split.manifest
    ds = m["dataset"]
    console.print(
        f"[bold]{m['method']}[/] split"
        + (f" on target [bold]{m['target']}[/]" if m.get("target") else "")
        + f" of {ds['name']} ({ds['n_structures']:,} structures, content hash "
        f"{ds['content_hash'][:12]}); split hash {split.hash[:12]}"
    )
    params = ", ".join(f"{k}={v}" for k, v in m["parameters"].items() if v not in (None, ()))
    console.print(f"parameters: {params}")
    by = made_by(m)
    console.print(f"made by {by.code_version or '?'} at {by.created_at or '?'}", style="dim")
    console.print(partition_table(m))
    if not m.get("target") and m.get("target_stats"):
        console.print(means_table(m["target_stats"]))
    details = m.get("details", {})
    if "procedure" in details:
        console.print(f"procedure: {details['procedure']}", style="dim")
    if "tails" in details:
        console.print(tails_table(details["tails"]))
    dup = m.get("duplicates", {})
    console.print(
        f"duplicates ({dup.get('identity', '?')}): mode {dup.get('mode')}, "
        f"{dup.get('n_duplicates', 0)} duplicate structures in the data"
    )
    for k, v in details.items():
        if k not in ("procedure", "tails"):
            console.print(f"{k}: {v}", highlight=False)


@app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="Split directory.")],
    data: Annotated[
        str | None, typer.Option(help="Store name or path (default: the split's).")
    ] = None,
    target: Annotated[list[str] | None, typer.Option(help="Targets for the KS test.")] = None,
    regenerate: Annotated[bool, typer.Option(help="Make it again and compare.")] = False,
) -> None:
    """Check hash, groups and duplicates (exit 2 on failure); print KS statistics vs train."""
    from atomcollapse.data.store import open_store
    from atomcollapse.splits import load_split
    from atomcollapse.splits.verify import verify_split

    split = load_split(path)
    store = open_store(data or split.manifest["dataset"]["name"], state.data_root)
    report = verify_split(split, store, targets=target or None, regenerate=regenerate)
    t = Table("check", "result")
    for what, outcome in report.checks:
        bad = any(p.startswith(f"{what}:") for p in report.problems)
        t.add_row(what, f"[red]{outcome}[/]" if bad else f"[green]{outcome}[/]")
    console.print(t)
    if report.ks:
        k = Table("target", "KS id_test vs train", "KS ood_test vs train")
        for name, v in report.ks.items():
            k.add_row(name, *("-" if x is None else f"{x:.3f}" for x in v.values()))
        console.print(k)
    if not report.ok:
        raise InputError(f"split fails verification: {'; '.join(report.problems)}", file=path)
    console.print(f"[green]ok[/]: split {split.hash[:12]} verified against {store.name}")


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="Split directory.")],
    fmt: Annotated[str, typer.Option("--format", help="extxyz | csv.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write.")],
    data: Annotated[
        str | None, typer.Option(help="Store name or path (default: the split's).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export.")] = False,
) -> None:
    """One file per partition (ids, targets in their units, split hash) for other frameworks."""
    from atomcollapse.artifacts import check_replaceable
    from atomcollapse.data.export import check_format
    from atomcollapse.data.store import open_store
    from atomcollapse.splits import load_split
    from atomcollapse.splits.export import FORMATS, KIND, export_split

    check_format(fmt, FORMATS)
    check_replaceable(out, KIND, overwrite=overwrite)
    split = load_split(path)
    store = open_store(data or split.manifest["dataset"]["name"], state.data_root)
    files = export_split(split, store, out, fmt=fmt, overwrite=overwrite)
    console.print(f"wrote {len(files)} {fmt} files of split {split.hash[:12]} -> {out}")
