import numpy as np
import pytest

from atomcollapse.constants import QM9_BENCHMARK_TARGETS, QM9_TARGETS, atomic_number
from atomcollapse.units import HARTREE_EV, convert, factor


def test_hartree_to_mev_and_back():
    assert convert(0.5048, "Ha", "meV") == pytest.approx(0.5048 * HARTREE_EV * 1000)
    assert np.allclose(convert(convert(np.array([1.0, 2.0]), "Ha", "eV"), "eV", "Ha"), [1.0, 2.0])


def test_length_powers():
    assert factor("A^3", "a0^3") == pytest.approx(1 / 0.529177210903**3)
    assert factor("a0^2", "A^2") == pytest.approx(0.529177210903**2)


def test_incompatible_units_refused():
    with pytest.raises(ValueError, match="cannot convert"):
        factor("Ha", "D")
    with pytest.raises(ValueError, match="unknown unit"):
        factor("Ha", "furlong")


def test_benchmark_targets_have_units_and_report_units():
    assert len(QM9_BENCHMARK_TARGETS) == 8
    for t in QM9_BENCHMARK_TARGETS:
        spec = QM9_TARGETS[t]
        factor(spec.unit, spec.report_unit)  # same dimension
    assert QM9_TARGETS["gap"].report_unit == "meV" and QM9_TARGETS["gap"].readout == "mean"


def test_atomic_number_rejects_non_elements():
    assert atomic_number("C") == 6
    with pytest.raises(KeyError):
        atomic_number("X")
    with pytest.raises(KeyError):
        atomic_number("Qq")
