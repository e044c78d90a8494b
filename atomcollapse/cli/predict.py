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
    import numpy as np

    from atomcollapse.artifacts import write_text_atomic
    from atomcollapse.data.store import store_path
    from atomcollapse.errors import InputError
    from atomcollapse.training.predict import load_predictor, predict_frames, predict_store

    if out.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", file=out)
    if (split is None) != (partition is None):
        raise InputError("--split and --partition go together")
    pred = load_predictor(run)
    found = store_path(data[0], state.data_root) if len(data) == 1 else None
    if found is not None and (found / "manifest.json").is_file():
        from atomcollapse.data.store import open_store
        from atomcollapse.splits.artifact import load_split

        store = open_store(found)
        rows = np.arange(len(store))
        if split is not None and partition is not None:
            s = load_split(split)
            s.check_dataset(store)
            rows = s.indices(partition)
        frame, f_frame = predict_store(pred, store, rows, forces=forces)
        if split is not None:
            frame.insert(1, "partition", partition)
            if pred.target and pred.target in store.target_names:
                frame["reference"] = np.asarray(store.target(pred.target))[rows]
    else:
        if split is not None:
            raise InputError("--split needs --data to name a store", file=split)
        from atomcollapse.data.sources.extxyz import read_frames

        frames, ids = [], []
        for f in data:
            got = read_frames(Path(f))
            for k, atoms in enumerate(got):
                pred.check_elements(atoms.numbers, f"{f} frame {k}")
                frames.append(atoms)
                ids.append(str(atoms.info.get("id", f"{Path(f).name}:{k}")))
        frame, f_frame = predict_frames(pred, frames, ids, forces=forces)
    write_text_atomic(out, frame.to_csv(index=False))
    if f_frame is not None:
        write_text_atomic(out.with_name(out.stem + ".forces.csv"), f_frame.to_csv(index=False))
    what = f"{pred.target} ({pred.unit})" if pred.has_property else "energies"
    console.print(f"wrote {out}: {len(frame):,} structures, {what}")
