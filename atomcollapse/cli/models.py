"""``atomcollapse models``: every registered pretrained name, what it is and whether it is here."""

from __future__ import annotations

import typer
from rich.table import Table

from atomcollapse.cli.common import console


def models(
    names: list[str] = typer.Argument(None, help="Names to describe [default: every one]."),
    params: bool = typer.Option(True, "--params/--no-params", help="Build each to count."),
) -> None:
    """Registered --pretrained names: elements, extra, installed here, parameters."""
    from atomcollapse.models.registry import describe, known_names

    t = Table()
    t.add_column("name", no_wrap=True)  # a name must stay whole to be copied
    for column in ("elements", "extra", "installed", "weights", "parameters",
                   "energy head (MFT trains)"):  # fmt: skip
        t.add_column(column)
    for name in names or known_names():
        row = describe(name, count_params=params)
        n = row["parameters"]
        installed = "yes" if row["installed"] else f"no: {row['install']}"
        t.add_row(row["name"], row["elements"], row["extra"] or "-", installed, row["weights"],
                  f"{n:,}" if n is not None else "-", row["energy_head"])  # fmt: skip
    console.print(t)
    console.print(
        "Native PaiNN checkpoints: --pretrained PATH.pt (see `atomcollapse checkpoint show`)"
    )
