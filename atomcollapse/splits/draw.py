"""The i.i.d. draw shared by every method: ID test and validation out of the training pool.

BOOM's recipe, generalised: ``random.seed(seed)``; walk the pool in data order and draw
``random.random()`` once per structure; ``< id_frac`` puts it in id_test. Then, continuing the
same generator, walk what is left in data order; ``< val_frac`` puts it in val. The rest is
train. With ``id_frac`` 0 (e.g. MatBench folds, whose test fold is fixed) the first walk is
skipped. Only representatives of duplicate groups draw; the other members follow them.
"""

from __future__ import annotations

import random

import numpy as np

from atomcollapse.splits.artifact import EXCLUDED, ID_TEST, TRAIN, VAL

PROCEDURE = (
    "random.Random(seed); for each pool structure in data order, one random() draw: < id_frac "
    "-> id_test (this pass is skipped when id_frac is 0); then, same generator, for each "
    "remaining pool structure in data order, one random() draw: < val_frac -> val; the rest "
    "-> train. Only the first structure of each duplicate group draws; the others follow it."
)


def draw_id_val(
    codes: np.ndarray, rep: np.ndarray, *, id_frac: float, val_frac: float, seed: int
) -> np.ndarray:
    """Fill id_test and val from the pool (structures coded TRAIN whose rep is themselves)."""
    codes = codes.copy()
    rng = random.Random(seed)
    pool = np.flatnonzero((codes == TRAIN) & (rep == np.arange(len(rep))))
    if id_frac > 0:
        first = np.fromiter((rng.random() for _ in range(len(pool))), np.float64, len(pool))
        to_id = first < id_frac
    else:
        to_id = np.zeros(len(pool), dtype=bool)
    codes[pool[to_id]] = ID_TEST
    rest = pool[~to_id]
    second = np.fromiter((rng.random() for _ in range(len(rest))), np.float64, len(rest))
    codes[rest[second < val_frac]] = VAL
    return codes


def follow_representatives(codes: np.ndarray, rep: np.ndarray, *, drop: bool) -> np.ndarray:
    """Members of a duplicate group take their representative's partition (or none if ``drop``)."""
    members = rep != np.arange(len(rep))
    out = codes.copy()
    out[members] = EXCLUDED if drop else codes[rep[members]]
    return out
