"""``atomcollapse predict``: a run's property (and energies, forces) on a store or ASE files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomcollapse.cli.common import console, state


def predict(
    run: Annotated[Path, typer.Argument(help="Run directory (its best.pt) or checkpoint file.")],
    data: Annotated[
        list[str], typer.Option("--data", help="Store name/path, or ASE-readable files (repeat).")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV to write (one row per structure).")],
    split: Annotated[Path | None, typer.Option("--split", help="Split of the store.")] = None,
    partition: Annotated[
        str | None, typer.Option("--partition", help="train | val | id_test | ood_test.")
    ] = None,
    forces: Annotated[
        bool, typer.Option("--forces", help="Also write OUT.forces.csv (eV/A per atom).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Property in the target's stored unit, energy (eV) and forces (eV/A); ids carried."""
    from atomcollapse.artifacts import write_text_atomic
    from atomcollapse.errors import InputError
    from atomcollapse.training.predict import load_predictor
    from atomcollapse.training.predict import predict as run_predict

    if out.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", file=out)
    if (split is None) != (partition is None):
        raise InputError("--split and --partition go together")
    pred = load_predictor(run)
    got = run_predict(pred, data, split=split, partition=partition, forces=forces,
                      data_root=state.data_root)  # fmt: skip
    write_text_atomic(out, got.structures.to_csv(index=False))
    if got.forces is not None:
        write_text_atomic(out.with_name(out.stem + ".forces.csv"), got.forces.to_csv(index=False))
    what = f"{pred.target} ({pred.unit})" if pred.has_property else "energies"
    console.print(f"wrote {out}: {len(got.structures):,} structures, {what}")
