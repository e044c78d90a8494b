"""OOD splits with their ID counterparts: property-tail (BOOM), scaffold, composition, size,
random and MatBench folds; one artifact format (:mod:`.artifact`) and verification."""

from atomcollapse.splits.artifact import PARTITIONS, Split, load_split, split_hash
from atomcollapse.splits.build import make_split
from atomcollapse.splits.config import METHODS, SplitConfig

__all__ = [
    "METHODS",
    "PARTITIONS",
    "Split",
    "SplitConfig",
    "load_split",
    "make_split",
    "split_hash",
]
