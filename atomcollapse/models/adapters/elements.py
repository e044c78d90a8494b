"""Element sets of pretrained models: per-atom lookup with clear errors, and filtering of rows.

A pretrained model knows a fixed set of elements (ANI-1x: H, C, N, O; SevenNet-0: 89 elements).
Atoms of any other element are refused with an :class:`~atomcollapse.errors.InputError` naming
the element and the structure; :func:`rows_with_elements` drops such structures from a split's
rows beforehand and says how many it dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from atomcollapse.constants import MAX_Z, SYMBOLS
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.errors import InputError


def element_table(numbers: Iterable[int], index: Iterable[int] | None = None) -> torch.Tensor:
    """(MAX_Z + 1,) int64 table: atomic number -> the model's species index, -1 if unknown."""
    numbers = [int(z) for z in numbers]
    index = list(range(len(numbers))) if index is None else [int(i) for i in index]
    table = torch.full((MAX_Z + 1,), -1, dtype=torch.long)
    table[torch.tensor(numbers, dtype=torch.long)] = torch.tensor(index, dtype=torch.long)
    return table


def species_of(batch: AtomsBatch, table: torch.Tensor, model: str) -> torch.Tensor:
    """The species index (N,) of each atom; InputError for an element the model does not know."""
    numbers = batch.numbers
    in_range = (numbers >= 0) & (numbers <= MAX_Z)
    species = table[numbers.clamp(0, MAX_Z)]
    bad = (species < 0) | ~in_range
    if bool(bad.any()):
        atom = int(torch.nonzero(bad)[0])
        z = int(numbers[atom])
        b = int(batch.batch[atom])
        row = int(batch.index[b]) if batch.index is not None else b
        name = SYMBOLS[z] if 0 <= z <= MAX_Z else f"Z={z}"
        known = ", ".join(SYMBOLS[int(k)] for k in torch.nonzero(table >= 0).flatten())
        raise InputError(
            f"element {name} is not supported by {model} (it knows {known}); "
            "leave such structures out (see rows_with_elements)",
            record=f"structure {row}",
        )
    return species


def rows_with_elements(
    numbers: np.ndarray, offsets: np.ndarray, rows: np.ndarray, elements: Iterable[int]
) -> tuple[np.ndarray, int]:
    """The ``rows`` (structure indices into packed ``numbers``/``offsets``) whose atoms are all
    in ``elements``, in their order, and the number of rows dropped."""
    allowed = np.zeros(MAX_Z + 2, dtype=bool)
    allowed[[int(z) for z in elements]] = True
    numbers = np.asarray(numbers, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    bad_atom = ~allowed[np.clip(numbers, 0, MAX_Z + 1)] | (numbers < 0) | (numbers > MAX_Z)
    seen = np.concatenate([[0], np.cumsum(bad_atom, dtype=np.int64)])
    bad_rows = seen[offsets[rows + 1]] - seen[offsets[rows]] > 0
    return rows[~bad_rows], int(bad_rows.sum())


def describe_drop(
    n_dropped: int, n_rows: int, elements: Iterable[int], what: str,
    whose: str = "the pretrained model's set",
) -> str:  # fmt: skip
    """One line for logs and manifests: how many ``what`` structures were left out and why."""
    zs = sorted(int(z) for z in elements)
    names = ", ".join(SYMBOLS[z] for z in zs) if len(zs) <= 12 else f"{len(zs)} elements"
    return f"left out {n_dropped} of {n_rows} {what} structures with elements outside {whose} ({names})"
