"""BOOM's property-tail split: the structures of lowest target density are the OOD test set.

Recipe (FLASK-LLNL/BOOM ``prepare_splits_qm9.py``): fit ``sklearn.neighbors.KernelDensity(
kernel="gaussian", bandwidth="scott")`` to the target values in the store's raw units, take the
``n_ood`` values of lowest density as ood_test, then draw id_test and val as in
:mod:`atomcollapse.splits.draw`. scikit-learn's "scott" bandwidth is ``n^(-1/5)`` in the
target's unit, not scaled by the spread (``--bandwidth-scaling scipy`` scales it as
``scipy.stats.gaussian_kde`` does). Densities come from :mod:`atomcollapse.splits.kde`, whose
ranking equals the exact KDE's; equal densities are broken by data order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atomcollapse.errors import InputError
from atomcollapse.splits.artifact import report_unit
from atomcollapse.splits.base import Selection, codes_with_ood
from atomcollapse.splits.config import SplitConfig
from atomcollapse.splits.draw import PROCEDURE
from atomcollapse.splits.kde import bandwidth, lowest_density
from atomcollapse.units import convert

_PROCEDURE = (
    "Gaussian KDE (scikit-learn KernelDensity semantics) fit on the target values in the stored "
    "unit of one structure per duplicate group; the n_ood of lowest density -> ood_test (equal "
    "densities: earlier structure first); then " + PROCEDURE
)


def select(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    assert cfg.target is not None
    values = np.asarray(store.target(cfg.target), dtype=np.float64)
    x = values[reps]
    n_ood = cfg.resolve_n_ood(len(reps), store.name)
    try:
        h = bandwidth(x, cfg.bandwidth, cfg.bandwidth_scaling)
    except ValueError as e:
        raise InputError(str(e), file=store.name) from None
    low = lowest_density(x, n_ood, h)
    ood = reps[low.indices]
    unit = store.manifest["targets"][cfg.target]["unit"]
    details = {
        "procedure": _PROCEDURE,
        "n_ood": n_ood,
        "n_candidates": len(reps),
        "bandwidth": {
            "value": h,
            "unit": unit,
            "rule": cfg.bandwidth,
            "scaling": cfg.bandwidth_scaling,
        },
        "kde": {
            "method": low.method,
            "values_rechecked_exactly": low.n_rechecked,
            "cutoff_log_density": low.cutoff_log_density,
            "ties_at_cutoff_left_out": low.cutoff_ties,
        },
        "tails": tails(values, ood, np.setdiff1d(reps, ood), unit, report_unit(store, cfg.target)),
    }
    return Selection(codes=codes_with_ood(len(values), ood), details=details)


def tails(
    values: np.ndarray, ood: np.ndarray, rest: np.ndarray, unit: str, report_unit: str
) -> dict[str, Any]:
    """OOD values below and above the median of the others, and whether they are two clean tails
    (every lower value <= the others' minimum, every upper value >= their maximum)."""
    r = values[rest]
    v = values[ood]
    med = float(np.median(r))
    parts = {"lower": v[v < med], "upper": v[v >= med]}

    def rng(a: np.ndarray) -> dict[str, Any]:
        lo, hi = float(a.min()), float(a.max())
        return {
            "count": int(a.size),
            "range": [lo, hi],
            "range_report": [float(convert(lo, unit, report_unit)),
                             float(convert(hi, unit, report_unit))],
        }  # fmt: skip

    out: dict[str, Any] = {"unit": unit, "report_unit": report_unit, "rest": rng(r)}
    for name, part in parts.items():
        out[name] = rng(part) if part.size else {"count": 0}
    lower_ok = not parts["lower"].size or parts["lower"].max() <= r.min()
    upper_ok = not parts["upper"].size or parts["upper"].min() >= r.max()
    out["two_clean_tails"] = bool(lower_ok and upper_ok)
    return out
