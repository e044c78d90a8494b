"""Bemis-Murcko scaffold splits: whole scaffold groups go to ood_test.

Scaffolds are RDKit ``MurckoScaffold.MurckoScaffoldSmiles(mol=..., includeChirality=False)`` of
the store's ``smiles`` column (``generic``: atoms to carbon, bonds to single, as RDKit's
``MakeScaffoldGeneric``); acyclic molecules share the empty scaffold ``""``. Orderings:

- ``largest-first`` (DeepChem, chemprop v1 "scaffold"): groups by size, largest first (ties:
  first appearance); each goes to the pool unless it would overflow ``n - n_ood``, else to
  ood_test. Deterministic; ood_test collects the rare scaffolds.
- ``balanced`` (chemprop v1 "scaffold_balanced"): groups larger than ``n_ood / 2`` first, then
  the rest, each list shuffled with ``random.Random(seed)``; same filling rule.
- ``smallest-to-test`` (astartes-like): smallest groups first into ood_test while they fit.

The ID test and validation sets are then drawn i.i.d. from the pool (:mod:`.draw`).
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pandas as pd

from atomcollapse.errors import InputError
from atomcollapse.parallel import map_chunks, usable_cpus
from atomcollapse.splits.base import Selection, codes_with_ood
from atomcollapse.splits.config import SplitConfig
from atomcollapse.splits.draw import PROCEDURE

_MEMO: dict[tuple[str, bool], tuple[np.ndarray, int, float]] = {}


# Distinct SMILES from which worker processes pay off (start-up ~0.3 s against ~45 us per
# molecule; measured with benchmarks/bench_splits.py --scaffold-only).
PARALLEL_MIN = 20_000


def murcko_scaffolds(
    smiles: np.ndarray, *, generic: bool = False, workers: int | None = None
) -> tuple[np.ndarray, int]:
    """Scaffold SMILES per entry (computed once per distinct SMILES) and the number not parsed.

    An unparsable SMILES becomes its own group, keyed ``"?" + smiles``. With
    ``PARALLEL_MIN`` or more distinct SMILES the work is spread over ``workers`` processes
    (default: every usable core); the result does not depend on how many.
    """
    codes, uniq = pd.factorize(np.asarray(smiles, dtype=str))
    if workers is None:
        workers = usable_cpus() if len(uniq) >= PARALLEL_MIN else 1
    found = map_chunks(_scaffold_chunk, [str(s) for s in uniq], workers=workers)
    bad = sum(f is None for f in found)
    out = [f"?{s}" if f is None else f for s, f in zip(uniq, found, strict=True)]
    if generic:
        generic_of = {s: _generic(s) for s in set(out)}
        out = [generic_of[s] for s in out]
    scaffolds = np.asarray(out, dtype=str)
    return scaffolds[codes], bad


def _scaffold_chunk(smiles: list[str]) -> list[str | None]:
    """RDKit Murcko scaffold SMILES of each SMILES, None where RDKit cannot parse it."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    out: list[str | None] = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        out.append(
            None
            if mol is None
            else MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
        )
    return out


def _generic(scaffold: str) -> str:
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    if not scaffold or scaffold.startswith("?"):
        return scaffold
    mol = Chem.MolFromSmiles(scaffold)
    if mol is None:
        return scaffold
    return Chem.MolToSmiles(MurckoScaffold.MakeScaffoldGeneric(mol))


def store_scaffolds(store: Any, generic: bool) -> tuple[np.ndarray, int, float]:
    """Scaffolds of a store's molecules, memoised per content hash; also parse failures, seconds."""
    if not store.has_column("smiles"):
        raise InputError("scaffold split needs a 'smiles' column; this dataset has none",
                         file=store.name)  # fmt: skip
    key = (store.content_hash, generic)
    if key not in _MEMO:
        t0 = time.perf_counter()
        scaffolds, bad = murcko_scaffolds(np.asarray(store.column("smiles")), generic=generic)
        _MEMO[key] = (scaffolds, bad, time.perf_counter() - t0)
    return _MEMO[key]


def assign_groups(
    sizes: np.ndarray, first: np.ndarray, n_ood: int, ordering: str, seed: int
) -> np.ndarray:
    """Boolean per group: True = ood_test. ``first`` orders ties (first appearance)."""
    n = int(sizes.sum())
    to_ood = np.zeros(len(sizes), dtype=bool)
    if ordering == "smallest-to-test":
        taken = 0
        for g in np.lexsort((first, sizes)):
            if taken + sizes[g] > n_ood:
                break
            to_ood[g] = True
            taken += sizes[g]
        return to_ood
    if ordering == "largest-first":
        order = list(np.lexsort((first, -sizes)))
    else:
        by_first = np.argsort(first, kind="stable")
        big = [g for g in by_first if sizes[g] > n_ood / 2]
        small = [g for g in by_first if sizes[g] <= n_ood / 2]
        rng = random.Random(seed)
        rng.shuffle(big)
        rng.shuffle(small)
        order = big + small
    pool, cap = 0, n - n_ood
    for g in order:
        if pool + sizes[g] > cap:
            to_ood[g] = True
        else:
            pool += sizes[g]
    return to_ood


def select(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    if store.kind != "molecules":
        raise InputError(f"scaffold split is for molecules; this dataset holds {store.kind}",
                         file=store.name)  # fmt: skip
    scaffolds, bad, seconds = store_scaffolds(store, cfg.generic)
    n_ood = cfg.resolve_n_ood(len(reps), store.name)
    groups, first, inv, sizes = np.unique(
        scaffolds[reps], return_index=True, return_inverse=True, return_counts=True
    )
    to_ood = assign_groups(sizes, first, n_ood, cfg.ordering, cfg.seed)
    ood = reps[to_ood[inv]]
    if not ood.size or ood.size == len(reps):
        raise InputError(
            f"scaffold split ({cfg.ordering}) put {'no' if not ood.size else 'every'} molecule "
            f"in ood_test ({len(groups)} scaffold groups); choose another n-ood or ordering",
            file=store.name,
        )
    details = {
        "procedure": (
            "Bemis-Murcko scaffolds (RDKit, includeChirality=False"
            f"{', generic' if cfg.generic else ''}); "
            f"ordering {cfg.ordering}: whole scaffold groups -> ood_test, target n_ood {n_ood}; "
            "then " + PROCEDURE
        ),
        "n_ood_requested": n_ood,
        "n_scaffolds": len(groups),
        "largest_group": {"scaffold": str(groups[np.argmax(sizes)]), "size": int(sizes.max())},
        "unparsed_smiles": bad,
        "scaffold_seconds": round(seconds, 2),
    }
    kind = "generic scaffold" if cfg.generic else "scaffold"
    n = len(store)
    return Selection(
        codes=codes_with_ood(n, ood), details=details, groups=scaffolds, group_kind=kind
    )
