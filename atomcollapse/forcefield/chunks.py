"""Work chunks of the labelling job: written atomically, read back, combined into structures.

A chunk holds the conformers of consecutive tasks that were labelled (packed like a store) and,
as a JSON string, the tasks that failed, so a resumed run rebuilds ``failures.jsonl`` exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.artifacts import atomic_file, write_text_atomic
from atomcollapse.data.schema import Structures, pack
from atomcollapse.errors import InputError
from atomcollapse.process import fault

FAILURES = "failures.jsonl"


def chunk_path(work: Path, c: int) -> Path:
    return work / f"chunk-{c:05d}.npz"


def write_chunk(path: Path, results: list[dict]) -> None:
    ok = [r for r in results if r["ok"]]
    fails = [{k: v for k, v in r.items() if k != "ok"} for r in results if not r["ok"]]
    arrays = {
        "parent_index": np.array([r["parent_index"] for r in ok], dtype=np.int64),
        "k": np.array([r["k"] for r in ok], dtype=np.int64),
        "method": np.array([r["method"] for r in ok], dtype=str),
        "n_atoms": np.array([len(r["numbers"]) for r in ok], dtype=np.int64),
        "numbers": np.concatenate([r["numbers"] for r in ok] or [np.zeros(0)]).astype(np.int16),
        "positions": np.concatenate([r["positions"] for r in ok] or [np.zeros((0, 3))]),
        "forces": np.concatenate([r["labels"].forces for r in ok] or [np.zeros((0, 3))]),
        "energy": np.array([r["labels"].energy for r in ok], dtype=np.float64),
        "gap": np.array([r["labels"].gap for r in ok], dtype=np.float64),
        "dipole": np.array([r["labels"].dipole for r in ok], dtype=np.float64),
        "failures": np.array(json.dumps(fails)),
    }
    with atomic_file(path, fsync=True) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)  # type: ignore[arg-type]
        fault("chunk-tmp-written")


def read_chunk(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"corrupt work chunk ({e}); delete it and run again", file=path) from None
    data["failures"] = json.loads(str(data["failures"]))
    return data


def write_failures(wd: Path, failures: list[dict]) -> None:
    write_text_atomic(wd / FAILURES, "".join(json.dumps(f) + "\n" for f in failures))


def combine_chunks(
    chunks: list[dict[str, Any]], store_ids: np.ndarray, smiles: np.ndarray | None
) -> Structures:
    """One :class:`Structures` with the xTB targets, forces and parent columns of all chunks."""
    parents = np.concatenate([c["parent_index"] for c in chunks])
    counts = np.concatenate([c["n_atoms"] for c in chunks])
    split_at = np.cumsum(counts)[:-1]
    parent_ids = store_ids[parents]
    ks = np.concatenate([c["k"] for c in chunks])
    s = pack(
        np.split(np.concatenate([c["numbers"] for c in chunks]), split_at),
        np.split(np.concatenate([c["positions"] for c in chunks]), split_at),
        ids=[f"{p}-k{k}" for p, k in zip(parent_ids, ks, strict=True)],
    )
    energy = np.concatenate([c["energy"] for c in chunks])
    s.columns = {
        "parent_id": parent_ids,
        "method": np.concatenate([c["method"] for c in chunks]),
        "smiles": np.full(parents.size, "") if smiles is None else smiles[parents],
    }
    s.targets = {
        "energy": energy,
        "energy_per_atom": energy / counts,
        "xtb_gap": np.concatenate([c["gap"] for c in chunks]),
        "xtb_dipole": np.concatenate([c["dipole"] for c in chunks]),
    }
    s.target_units = {
        "energy": "eV",
        "energy_per_atom": "eV/atom",
        "xtb_gap": "eV",
        "xtb_dipole": "D",
    }
    s.atom_arrays = {"forces": np.concatenate([c["forces"] for c in chunks])}
    s.array_units = {"forces": "eV/A"}
    return s
