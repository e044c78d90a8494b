"""Units: the one place that converts between them.

Values are stored in the units of their source (QM9 in Hartree, Debye, bohr^n, ...) and the
manifest names that unit. Conversion for reports and models goes through :func:`convert`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# CODATA 2018.
HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903
KCAL_MOL_EV = 0.0433641043
EV_A3_GPA = 160.21766208
E_BOHR_DEBYE = 2.541746473  # 1 e*a0 in Debye
KB_EV = 8.617333262e-5  # Boltzmann constant, eV/K
AMU_A2_FS2_EV = 103.6426965  # 1 amu*A^2/fs^2 in eV

# Each unit: (dimension, factor to the dimension's base unit).
_UNITS: Mapping[str, tuple[str, float]] = {
    # energy, base eV
    "eV": ("energy", 1.0),
    "meV": ("energy", 1e-3),
    "Ha": ("energy", HARTREE_EV),
    "mHa": ("energy", HARTREE_EV * 1e-3),
    "kcal/mol": ("energy", KCAL_MOL_EV),
    # energy per atom, base eV/atom
    "eV/atom": ("energy/atom", 1.0),
    "meV/atom": ("energy/atom", 1e-3),
    # energy per formula / cell, kept separate from per-structure energy on purpose
    "eV/unit cell": ("energy/cell", 1.0),
    # force, base eV/A
    "eV/A": ("force", 1.0),
    "meV/A": ("force", 1e-3),
    "Ha/a0": ("force", HARTREE_EV / BOHR_ANGSTROM),
    # stress / pressure, base GPa
    "GPa": ("pressure", 1.0),
    "eV/A^3": ("pressure", EV_A3_GPA),
    "log10(GPa)": ("log10 pressure", 1.0),
    # dipole, base Debye
    "D": ("dipole", 1.0),
    "e*a0": ("dipole", E_BOHR_DEBYE),
    # volume-like (polarisability), base a0^3
    "a0^3": ("length^3", 1.0),
    "A^3": ("length^3", 1.0 / BOHR_ANGSTROM**3),
    # area-like (electronic spatial extent), base a0^2
    "a0^2": ("length^2", 1.0),
    "A^2": ("length^2", 1.0 / BOHR_ANGSTROM**2),
    # length, base A
    "A": ("length", 1.0),
    "a0": ("length", BOHR_ANGSTROM),
    # others
    "GHz": ("frequency", 1.0),
    "cm^-1": ("wavenumber", 1.0),
    "cal/mol/K": ("heat capacity", 1.0),
    "1": ("dimensionless", 1.0),
}


def known_units() -> list[str]:
    return list(_UNITS)


def dimension(unit: str) -> str:
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(_UNITS)}")
    return _UNITS[unit][0]


def factor(from_unit: str, to_unit: str) -> float:
    """Multiplicative factor taking a value in ``from_unit`` to ``to_unit``."""
    d_from, f_from = _UNITS.get(from_unit, (None, 0.0))
    d_to, f_to = _UNITS.get(to_unit, (None, 0.0))
    if d_from is None or d_to is None:
        bad = from_unit if d_from is None else to_unit
        raise ValueError(f"unknown unit {bad!r}; known: {', '.join(_UNITS)}")
    if d_from != d_to:
        raise ValueError(f"cannot convert {from_unit} ({d_from}) to {to_unit} ({d_to})")
    return f_from / f_to


def convert(values, from_unit: str, to_unit: str):
    """Convert a scalar or array from one unit to another of the same dimension."""
    f = factor(from_unit, to_unit)
    if isinstance(values, (int, float)):
        return values * f
    return np.asarray(values) * f
