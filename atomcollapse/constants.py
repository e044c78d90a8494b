"""Targets, their units and element data: the single source of truth.

QM9 targets (raw units as published by Ramakrishnan et al. 2014, kept in the store):

=======  ==========================================  ==========  ==========  =========
name     meaning                                     raw unit    report in   readout
=======  ==========================================  ==========  ==========  =========
A,B,C    rotational constants                        GHz         GHz         mean
mu       dipole moment                               D           D           sum
alpha    isotropic polarisability                    a0^3        a0^3        sum
homo     HOMO energy                                 Ha          meV         mean
lumo     LUMO energy                                 Ha          meV         mean
gap      HOMO-LUMO gap                               Ha          meV         mean
r2       electronic spatial extent <R^2>             a0^2        a0^2        sum
zpve     zero-point vibrational energy               Ha          meV         sum
u0       internal energy at 0 K                      Ha          eV          sum
u        internal energy at 298.15 K                 Ha          eV          sum
h        enthalpy at 298.15 K                        Ha          eV          sum
g        free energy at 298.15 K                     Ha          eV          sum
cv       heat capacity at 298.15 K                   cal/mol/K   cal/mol/K   sum
=======  ==========================================  ==========  ==========  =========

The eight benchmark targets of the study are :data:`QM9_BENCHMARK_TARGETS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ase.data import atomic_numbers as _ASE_NUMBERS
from ase.data import chemical_symbols as _ASE_SYMBOLS
from ase.data import covalent_radii as _ASE_COVALENT


@dataclass(frozen=True)
class TargetSpec:
    """A regression target: its stored (raw) unit, the unit reports use, and its readout."""

    name: str
    description: str
    unit: str
    report_unit: str
    extensive: bool

    @property
    def readout(self) -> str:
        return "sum" if self.extensive else "mean"


QM9_TARGETS: dict[str, TargetSpec] = {
    t.name: t
    for t in [
        TargetSpec("A", "rotational constant A", "GHz", "GHz", False),
        TargetSpec("B", "rotational constant B", "GHz", "GHz", False),
        TargetSpec("C", "rotational constant C", "GHz", "GHz", False),
        TargetSpec("mu", "dipole moment", "D", "D", True),
        TargetSpec("alpha", "isotropic polarisability", "a0^3", "a0^3", True),
        TargetSpec("homo", "HOMO energy", "Ha", "meV", False),
        TargetSpec("lumo", "LUMO energy", "Ha", "meV", False),
        TargetSpec("gap", "HOMO-LUMO gap", "Ha", "meV", False),
        TargetSpec("r2", "electronic spatial extent <R^2>", "a0^2", "a0^2", True),
        TargetSpec("zpve", "zero-point vibrational energy", "Ha", "meV", True),
        TargetSpec("u0", "internal energy at 0 K", "Ha", "eV", True),
        TargetSpec("u", "internal energy at 298.15 K", "Ha", "eV", True),
        TargetSpec("h", "enthalpy at 298.15 K", "Ha", "eV", True),
        TargetSpec("g", "free energy at 298.15 K", "Ha", "eV", True),
        TargetSpec("cv", "heat capacity at 298.15 K", "cal/mol/K", "cal/mol/K", True),
    ]
}

#: The study's eight QM9 targets, in the order of its tables.
QM9_BENCHMARK_TARGETS: tuple[str, ...] = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "cv")

#: Column order of the 15 QM9 properties in the original xyz comment line (after ``gdb <index>``).
QM9_XYZ_ORDER: tuple[str, ...] = (
    "A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u", "h", "g", "cv",
)  # fmt: skip

QM9_N_CONSISTENT = 130_831
QM9_N_ALL = 133_885
QM9_N_UNCHARACTERIZED = 3_054

#: MatBench structure tasks: target column, unit, and size. Composition-only tasks are refused.
MATBENCH_STRUCTURE_TASKS: dict[str, tuple[str, str]] = {
    "matbench_mp_e_form": ("e_form", "eV/atom"),
    "matbench_mp_gap": ("gap pbe", "eV"),
    "matbench_perovskites": ("e_form", "eV/unit cell"),
    "matbench_log_gvrh": ("log10(G_VRH)", "log10(GPa)"),
    "matbench_log_kvrh": ("log10(K_VRH)", "log10(GPa)"),
    "matbench_dielectric": ("n", "1"),
    "matbench_phonons": ("last phdos peak", "cm^-1"),
    "matbench_jdft2d": ("exfoliation_en", "meV/atom"),
    "matbench_mp_is_metal": ("is_metal", "1"),
}
MATBENCH_COMPOSITION_TASKS: frozenset[str] = frozenset(
    {"matbench_expt_gap", "matbench_expt_is_metal", "matbench_glass", "matbench_steels"}
)

SYMBOLS: tuple[str, ...] = tuple(_ASE_SYMBOLS)
MAX_Z = len(SYMBOLS) - 1


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol; raises KeyError for anything that is not an element."""
    z = _ASE_NUMBERS[symbol]
    if z == 0:  # ASE's placeholder "X"
        raise KeyError(symbol)
    return z


def covalent_radius(z: int) -> float:
    """Covalent radius in Angstrom (Cordero et al. 2008, as tabulated by ASE)."""
    return float(_ASE_COVALENT[z])
