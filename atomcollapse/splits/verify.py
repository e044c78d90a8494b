"""Check a split against its dataset: hash, groups, duplicates, and how far the tests shift.

Failures (``VerifyReport.problems``): the dataset's content hash differs; partition codes or
counts disagree with the manifest; a scaffold / composition group (recomputed from the data)
has structures both in the pool (train, val, id_test) and in ood_test; a held-out element
occurs outside ood_test; a structure of a size split is larger than an OOD one; the same
molecule or crystal (see :mod:`.identity`) sits in two partitions; with ``regenerate``, making
the split again from its manifest gives other indices. The two-sample Kolmogorov-Smirnov
statistic of id_test and ood_test against train is reported for each target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atomcollapse.errors import InputError
from atomcollapse.splits.artifact import (
    EXCLUDED,
    ID_TEST,
    OOD_TEST,
    PARTITIONS,
    TRAIN,
    Split,
    partition_counts,
)
from atomcollapse.splits.config import SplitConfig


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (what, outcome)
    ks: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def _add(self, what: str, problem: str | None, fine: str = "ok") -> None:
        self.checks.append((what, problem or fine))
        if problem:
            self.problems.append(f"{what}: {problem}")


def config_from_manifest(manifest: dict[str, Any]) -> SplitConfig:
    """The configuration that made a split (to regenerate it)."""
    params = dict(manifest["parameters"])
    if "labels" in params:
        params["labels"] = tuple(params["labels"])
    return SplitConfig(method=manifest["method"], **params)


def verify_split(
    split: Split, store: Any, *, targets: list[str] | None = None, regenerate: bool = False
) -> VerifyReport:
    rep = VerifyReport()
    try:
        split.check_dataset(store)
    except InputError as e:
        rep._add("dataset hash", e.problem)
        return rep
    try:
        store.verify_content(cached=False)
    except InputError as e:
        rep._add("dataset hash", f"{e.file}: {e.problem}")
        return rep
    rep._add(
        "dataset hash", None, f"matches {store.name} ({store.content_hash[:12]}), arrays re-hashed"
    )
    codes = split.codes
    bad = ~np.isin(codes, [*range(len(PARTITIONS)), EXCLUDED])
    counts_ok = partition_counts(codes) == split.manifest.get("counts")
    rep._add(
        "partition codes",
        f"{int(bad.sum())} invalid codes" if bad.any() else
        None if counts_ok else "counts differ from the manifest",
    )  # fmt: skip
    _check_groups(split, store, rep)
    _check_duplicates(split, store, rep)
    if regenerate:
        from atomcollapse.splits.build import make_split

        again = make_split(store, config_from_manifest(split.manifest))
        same = np.array_equal(again.codes, codes)
        rep._add("regenerate", None if same else "making the split again gives other indices",
                 "identical indices")  # fmt: skip
    for t in targets if targets is not None else _default_targets(split, store):
        rep.ks[t] = ks_statistics(np.asarray(store.target(t), dtype=np.float64), codes)
    return rep


def ks_statistics(values: np.ndarray, codes: np.ndarray) -> dict[str, float | None]:
    """Two-sample KS statistic of id_test and of ood_test against train (None if empty)."""
    from scipy.stats import ks_2samp

    train = values[codes == TRAIN]
    out: dict[str, float | None] = {}
    for name, code in (("id_test", ID_TEST), ("ood_test", OOD_TEST)):
        v = values[codes == code]
        out[name] = float(ks_2samp(v, train).statistic) if v.size and train.size else None
    return out


def _default_targets(split: Split, store: Any) -> list[str]:
    return [split.target] if split.target else list(store.target_names)


def _check_groups(split: Split, store: Any, rep: VerifyReport) -> None:
    codes = split.codes
    pool = np.isin(codes, (0, 1, 2))
    ood = codes == OOD_TEST
    method, params = split.method, split.manifest["parameters"]
    groups = None
    if method == "scaffold":
        from atomcollapse.splits.scaffold import store_scaffolds

        groups = store_scaffolds(store, bool(params.get("generic")))[0]
        what = "scaffold groups"
    elif method == "composition":
        from atomcollapse.splits import composition as comp

        counts, zs = comp.composition_counts(store)
        held = split.manifest["details"]["held_out"]
        by = params["by"]
        what = f"{by} groups"
        if by == "element":
            cols = np.isin([comp.SYMBOLS[z] for z in zs], held)
            has = (counts[:, cols] > 0).any(axis=1)
            n_bad = int(np.count_nonzero(has & pool)) + int(np.count_nonzero(~has & ood))
            rep._add(f"held-out elements {', '.join(held)}",
                     f"{n_bad} structures on the wrong side" if n_bad else None)  # fmt: skip
            return
        if by == "formula":
            groups = comp.reduced_formulas(counts, zs)
        elif by == "chemsys":
            groups = comp.chemical_systems(counts, zs)
        else:
            stored = split.labels.get("cluster")
            if stored is None or stored.shape != codes.shape:
                rep._add("cluster labels", "artifact has no cluster labels")
                return
            groups = stored.astype(str)
    elif method == "size":
        from atomcollapse.splits.simple import structure_sizes

        heavy, atoms = structure_sizes(store)
        key = heavy if store.kind == "molecules" else atoms
        n_bad = int(np.count_nonzero(key[pool] > key[ood].min())) if ood.any() and pool.any() else 0
        rep._add("size order", f"{n_bad} pool structures larger than an OOD one" if n_bad else None)
        return
    else:
        return
    shared = np.intersect1d(groups[pool], groups[ood])
    if shared.size:
        example = shared[0] if shared[0] != "" else "'' (acyclic)"
        rep._add(what, f"{shared.size} groups straddle the pool and ood_test (e.g. {example})")
    else:
        rep._add(what, None, f"no group straddles the pool and ood_test ({len(np.unique(groups))})")


def _check_duplicates(split: Split, store: Any, rep: VerifyReport) -> None:
    from atomcollapse.splits.identity import identity

    ident = identity(store)
    codes = split.codes
    own = codes[ident.rep]
    clash = (codes != own) & (codes != EXCLUDED) & (own != EXCLUDED)
    n = len(np.unique(ident.rep[clash]))
    what = f"duplicates ({ident.basis})"
    if n:
        i = int(np.flatnonzero(clash)[0])
        ids = np.asarray(store.ids)
        rep._add(what, f"{n} duplicate groups span two partitions (e.g. {ids[ident.rep[i]]} in "
                 f"{_name(own[i])} and {ids[i]} in {_name(codes[i])})")  # fmt: skip
    else:
        rep._add(what, None, f"none across partitions ({ident.n_duplicates} duplicates in data)")


def _name(code: int) -> str:
    return PARTITIONS[int(code)] if code < len(PARTITIONS) else "none"
