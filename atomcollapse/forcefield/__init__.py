"""Force-field data: off-equilibrium conformers labelled with GFN2-xTB (tblite).

``sampling`` draws conformers, ``xtb`` labels one structure, ``selection`` picks the molecules
(minus split test sets), ``job`` runs the resumable labelling over a worker pool, ``chunks``
holds its on-disk work chunks, and the result is a ``forcefield`` dataset store.
"""

from atomcollapse.forcefield.job import LabelJob, LabelOutcome, run_label_job, work_dir
from atomcollapse.forcefield.sampling import METHODS, SamplingConfig
from atomcollapse.forcefield.xtb import Labels, label_structure, level_of_theory

__all__ = [
    "METHODS",
    "LabelJob",
    "LabelOutcome",
    "Labels",
    "SamplingConfig",
    "label_structure",
    "level_of_theory",
    "run_label_job",
    "work_dir",
]
