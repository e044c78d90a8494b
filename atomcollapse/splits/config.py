"""What a split is asked to be: one validated, frozen configuration for every method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atomcollapse.errors import InputError

METHODS: tuple[str, ...] = (
    "property-tail", "scaffold", "composition", "size", "random", "matbench-fold",
)  # fmt: skip
ORDERINGS: tuple[str, ...] = ("largest-first", "balanced", "smallest-to-test")
COMPOSITION_BY: tuple[str, ...] = ("element", "chemsys", "formula", "cluster")
DEDUPE: tuple[str, ...] = ("group", "drop", "none")
BOOM_N_OOD = 10_000

# Parameters that matter to each method (recorded in the manifest), beyond the common draw ones.
_METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "property-tail": ("target", "n_ood", "ood_frac", "bandwidth", "bandwidth_scaling"),
    "scaffold": ("n_ood", "ood_frac", "ordering", "generic"),
    "composition": ("by", "labels", "n_folds", "fold", "n_clusters", "n_init"),
    "size": ("n_ood", "ood_frac"),
    "random": (),
    "matbench-fold": ("fold",),
}
_COMMON = ("id_frac", "val_frac", "seed", "dedupe")


@dataclass(frozen=True)
class SplitConfig:
    """A split request. ``n_ood`` or ``ood_frac`` size the OOD set (``n_ood`` wins).

    Defaults: property-tail holds out ``min(10,000, n // 10)`` (BOOM's 10,000 for QM9), scaffold
    and size 10 %. ``dedupe``: ``group`` keeps duplicates of one molecule/crystal in one
    partition, ``drop`` keeps only the first of each (BOOM collapsed duplicates), ``none``
    treats every structure on its own.
    """

    method: str
    target: str | None = None
    n_ood: int | None = None
    ood_frac: float | None = None
    id_frac: float = 0.05
    val_frac: float = 0.05
    seed: int = 42
    dedupe: str = "group"
    bandwidth: str | float = "scott"
    bandwidth_scaling: str = "sklearn"
    ordering: str = "largest-first"
    generic: bool = False
    by: str = "element"
    labels: tuple[str, ...] = field(default_factory=tuple)
    n_folds: int | None = None
    fold: int | None = None
    n_clusters: int = 10
    n_init: int = 10

    def validate(self) -> None:
        """Check values that do not depend on the dataset."""
        _choice("method", self.method, METHODS)
        _choice("dedupe", self.dedupe, DEDUPE)
        _choice("ordering", self.ordering, ORDERINGS)
        _choice("composition grouping (--by)", self.by, COMPOSITION_BY)
        _choice("bandwidth scaling", self.bandwidth_scaling, ("sklearn", "scipy"))
        if isinstance(self.bandwidth, str):
            _choice("bandwidth", self.bandwidth, ("scott", "silverman"))
        elif not self.bandwidth > 0:
            raise InputError(f"bandwidth must be positive, got {self.bandwidth}")
        for name in ("id_frac", "val_frac"):
            v = getattr(self, name)
            if not 0 <= v < 1:
                raise InputError(f"{name.replace('_', '-')} must be in [0, 1), got {v}")
        if self.ood_frac is not None and not 0 < self.ood_frac < 1:
            raise InputError(f"ood-frac must be in (0, 1), got {self.ood_frac}")
        if self.n_ood is not None and self.n_ood < 1:
            raise InputError(f"n-ood must be at least 1, got {self.n_ood}")
        if self.n_clusters < 2 or self.n_init < 1:
            raise InputError("n-clusters must be at least 2 and n-init at least 1")
        if self.n_folds is not None and self.n_folds < 2:
            raise InputError(f"n-folds must be at least 2, got {self.n_folds}")
        if self.fold is not None and self.fold < 0:
            raise InputError(f"fold must be >= 0, got {self.fold}")

    def resolve_n_ood(self, n: int, dataset: str) -> int:
        """The OOD size for ``n`` candidate structures; InputError unless ``1 <= n_ood < n``."""
        if self.n_ood is not None:
            k = self.n_ood
        elif self.ood_frac is not None:
            k = round(self.ood_frac * n)
        elif self.method == "property-tail":
            k = min(BOOM_N_OOD, n // 10)
        else:
            k = round(0.1 * n)
        if not 1 <= k < n:
            raise InputError(
                f"n-ood ({k:,}) must be at least 1 and smaller than the dataset ({n:,} structures)",
                file=dataset,
            )
        return k

    def parameters(self) -> dict[str, Any]:
        """The parameters that define this method's split (for the manifest)."""
        names = _COMMON + _METHOD_PARAMS[self.method]
        out = {k: getattr(self, k) for k in names}
        if "labels" in out:
            out["labels"] = list(out["labels"])
        return out


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
