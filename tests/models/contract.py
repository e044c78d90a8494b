"""The model-contract suite lives in the package (:mod:`atomcollapse.testing.contract`)."""

from atomcollapse.testing.contract import *  # noqa: F403
from atomcollapse.testing.contract import ALL_CHECKS, MOLECULE_CHECKS  # noqa: F401
