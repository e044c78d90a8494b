"""radius_graph against ASE's neighbour list: molecules, triclinic and tiny cells, mixed pbc."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

import atomcollapse.data.neighbors as nb
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.errors import InputError

SKEWED = np.array([[4.1, 0.0, 0.0], [3.3, 2.9, 0.0], [-2.4, 1.7, 3.2]])


def _batch(structures: list[Atoms], dtype=torch.float64):
    pos = torch.tensor(np.concatenate([a.positions for a in structures]), dtype=dtype)
    offsets = torch.tensor(np.cumsum([0] + [len(a) for a in structures]), dtype=torch.long)
    cell = torch.tensor(np.stack([a.cell.array for a in structures]), dtype=dtype)
    pbc = torch.tensor(np.stack([a.pbc for a in structures]))
    return pos, offsets, cell, pbc


def _ase_edges(structures: list[Atoms], cutoff: float) -> dict[tuple, float]:
    """{(i, j, S): distance} with global atom indices, from ASE one structure at a time."""
    out, base = {}, 0
    for a in structures:
        i, j, s, d = neighbor_list("ijSd", a, cutoff)
        for e in range(len(i)):
            out[(base + int(i[e]), base + int(j[e]), tuple(int(x) for x in s[e]))] = float(d[e])
        base += len(a)
    return out


def _our_edges(structures: list[Atoms], cutoff: float, dtype=torch.float64):
    """{(i, j, S): distance} from radius_graph, integer images recovered from the shifts."""
    pos, offsets, cell, pbc = _batch(structures, dtype)
    edge_index, shifts = radius_graph(pos, offsets, cutoff, cell, pbc)
    assert edge_index.dtype == torch.long and shifts.dtype == dtype
    vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts
    dist = torch.linalg.vector_norm(vec, dim=1).double().numpy()
    which = np.searchsorted(offsets.numpy(), edge_index[0].numpy(), side="right") - 1
    inv = np.stack([np.linalg.inv(a.cell.complete()) for a in structures])
    frac = np.einsum("ei,eij->ej", shifts.double().numpy(), inv[which])
    images = [tuple(s) for s in np.rint(frac).astype(int).tolist()]
    keys = [(int(i), int(j), s) for i, j, s in zip(*edge_index.tolist(), images, strict=True)]
    assert len(set(keys)) == len(keys), "duplicate edges"
    return dict(zip(keys, dist.tolist(), strict=True)), edge_index, shifts


def _assert_same_as_ase(structures: list[Atoms], cutoff: float) -> None:
    ref = _ase_edges(structures, cutoff)
    ours, _, _ = _our_edges(structures, cutoff)
    assert set(ours) == set(ref)
    keys = sorted(ref)
    np.testing.assert_allclose([ours[k] for k in keys], [ref[k] for k in keys], atol=1e-10)


def _molecule(rng: np.random.Generator, n: int, spread: float = 1.6) -> Atoms:
    return Atoms(numbers=rng.integers(1, 10, n), positions=rng.normal(size=(n, 3)) * spread)


def _crystal(rng, n: int, cell, pbc=True, frac_range=(-0.5, 1.5)) -> Atoms:
    frac = rng.uniform(*frac_range, size=(n, 3))
    return Atoms(numbers=[6] * n, positions=frac @ np.asarray(cell), cell=cell, pbc=pbc)


def test_molecule_batch_matches_ase():
    rng = np.random.default_rng(0)
    mols = [_molecule(rng, n) for n in (5, 1, 18, 2, 29, 11)]
    for cutoff in (1.5, 5.0):
        _assert_same_as_ase(mols, cutoff)


def test_large_molecule_uses_cell_list_and_matches_ase():
    rng = np.random.default_rng(1)
    big = Atoms(numbers=[6] * 700, positions=rng.uniform(0, 22, size=(700, 3)))
    assert len(big) > nb.DENSE_MAX_ATOMS
    _assert_same_as_ase([_molecule(rng, 9), big, _molecule(rng, 4)], 4.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_triclinic_cells_match_ase(seed):
    rng = np.random.default_rng(seed)
    crystals = []
    for _ in range(4):
        cell = np.diag(rng.uniform(3.0, 7.0, 3)) + np.tril(rng.uniform(-3, 3, (3, 3)), -1)
        crystals.append(_crystal(rng, int(rng.integers(1, 20)), cell))
    crystals.append(_crystal(rng, 6, SKEWED))
    _assert_same_as_ase(crystals, 5.0)


def test_tiny_cell_cutoff_much_larger_than_cell():
    cu = bulk("Cu", "fcc", a=3.6)
    assert len(cu) == 1
    _assert_same_as_ase([cu], 6.0)
    _, edge_index, _ = _our_edges([cu], 6.0)
    assert edge_index.shape[1] == 12 + 6 + 24 + 12 + 24  # fcc shells up to sqrt(5/2) a
    _assert_same_as_ase(
        [bulk("Si", "diamond", a=5.43), _crystal(np.random.default_rng(3), 2, SKEWED * 0.5)], 7.0
    )


@pytest.mark.parametrize(
    ("cell", "pbc"),
    [
        ([[3.0, 0, 0], [1.2, 3.5, 0], [0, 0, 0]], [True, True, False]),
        ([[3.0, 0, 0], [1.2, 3.5, 0], [0.5, 0.3, 9.0]], [True, True, False]),
        ([[0, 0, 0], [0.4, 2.8, 0.3], [0, 0, 0]], [False, True, False]),
        ([[3.1, 0.2, 0], [0, 4.0, 0], [1.0, 0.5, 3.0]], [True, False, True]),
    ],
)
def test_mixed_pbc_matches_ase(cell, pbc):
    rng = np.random.default_rng(4)
    pos = rng.normal(size=(7, 3)) * 3.0
    atoms = Atoms(numbers=[8] * 7, positions=pos, cell=cell, pbc=pbc)
    _assert_same_as_ase([atoms, _molecule(rng, 6)], 5.0)


def _mixed_batch() -> list[Atoms]:
    rng = np.random.default_rng(5)
    return [
        _molecule(rng, 12),
        bulk("Cu", "fcc", a=3.6),
        _molecule(rng, 1),
        _crystal(rng, 9, SKEWED),
        Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cell=np.eye(3) * 8),
        _crystal(rng, 5, [[3.0, 0, 0], [0, 3.5, 0], [0, 0, 0]], pbc=[True, True, False]),
        _molecule(rng, 20),
    ]


def test_mixed_batch_equals_per_structure_results():
    structures = _mixed_batch()
    cutoff = 4.5
    _assert_same_as_ase(structures, cutoff)
    pos, offsets, cell, pbc = _batch(structures)
    edge_index, shifts = radius_graph(pos, offsets, cutoff, cell, pbc)
    parts_e, parts_s = [], []
    for b, a in enumerate(structures):
        p, o, c, f = _batch([a])
        e, s = radius_graph(p, o, cutoff, c, f)
        parts_e.append(e + offsets[b])
        parts_s.append(s)
    assert torch.equal(edge_index, torch.cat(parts_e, dim=1))
    assert torch.equal(shifts, torch.cat(parts_s))


def test_output_sorted_symmetric_and_deterministic():
    structures = _mixed_batch()
    pos, offsets, cell, pbc = _batch(structures)
    edge_index, shifts = radius_graph(pos, offsets, 5.0, cell, pbc)
    ours, _, _ = _our_edges(structures, 5.0)
    keys = list(ours)
    assert keys == sorted(keys)
    assert all((j, i, tuple(-x for x in s)) in ours for i, j, s in keys)
    again = radius_graph(pos, offsets, 5.0, cell, pbc)
    assert torch.equal(again[0], edge_index) and torch.equal(again[1], shifts)
    mol = ~pbc.any(dim=1)
    atom_is_mol = torch.repeat_interleave(mol, offsets.diff())
    assert (shifts[atom_is_mol[edge_index[0]]] == 0).all()


def test_dense_and_cell_list_paths_agree_and_chunking_and_binning_are_invisible(monkeypatch):
    structures = _mixed_batch()
    pos, offsets, cell, pbc = _batch(structures)
    expected = radius_graph(pos, offsets, 5.0, cell, pbc)
    monkeypatch.setattr(nb, "DENSE_MAX_ATOMS", 0)
    cell_list = radius_graph(pos, offsets, 5.0, cell, pbc)
    monkeypatch.setattr(nb, "_MAX_BINS", 2)
    coarse = radius_graph(pos, offsets, 5.0, cell, pbc)
    monkeypatch.setattr(nb, "_PAIR_BUDGET", 100)
    chunked = radius_graph(pos, offsets, 5.0, cell, pbc)
    monkeypatch.setattr(nb, "DENSE_MAX_ATOMS", 512)
    dense_chunked = radius_graph(pos, offsets, 5.0, cell, pbc)
    for got in (cell_list, coarse, chunked, dense_chunked):
        assert torch.equal(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-12)


def test_cutoff_is_strict():
    two = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    offsets = torch.tensor([0, 2])
    assert radius_graph(two, offsets, 2.0)[0].shape[1] == 0
    assert radius_graph(two, offsets, 2.0 + 1e-9)[0].shape[1] == 2
    one = torch.zeros((1, 3), dtype=torch.float64)
    cubic = (torch.eye(3, dtype=torch.float64) * 2.0)[None]
    pbc = torch.ones((1, 3), dtype=torch.bool)
    assert radius_graph(one, torch.tensor([0, 1]), 2.0, cubic, pbc)[0].shape[1] == 0
    edge_index, shifts = radius_graph(one, torch.tensor([0, 1]), 2.0 + 1e-9, cubic, pbc)
    assert edge_index.tolist() == [[0] * 6, [0] * 6]
    assert shifts.tolist() == sorted(shifts.tolist())
    assert sorted(map(tuple, shifts.abs().tolist())) == sorted(
        [(2.0, 0, 0), (0, 2.0, 0), (0, 0, 2.0)] * 2
    )


def test_float32_agrees_with_float64_away_from_the_cutoff():
    structures = _mixed_batch()
    cutoff = 5.0
    ref = _ase_edges(structures, cutoff)
    ours, _, _ = _our_edges(structures, cutoff, dtype=torch.float32)
    assert all(d < cutoff for d in ours.values())
    diff = set(ours) ^ set(ref)
    assert all(abs(ref.get(k, ours.get(k)) - cutoff) < 1e-4 for k in diff)
    assert len(ours) > 1000


def test_empty_batches_and_empty_structures():
    empty = radius_graph(torch.zeros((0, 3)), torch.tensor([0]), 5.0)
    assert empty[0].shape == (2, 0) and empty[1].shape == (0, 3)
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    edge_index, shifts = radius_graph(pos, torch.tensor([0, 0, 2, 2]), 5.0)
    assert edge_index.tolist() == [[0, 1], [1, 0]]
    assert shifts.dtype == torch.float32 and not shifts.any()


def test_positions_requiring_grad_are_accepted():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0]], requires_grad=True)
    edge_index, shifts = radius_graph(pos, torch.tensor([0, 3]), 2.0)
    assert edge_index.shape[1] == 6 and not shifts.requires_grad
    vec = pos[edge_index[1]] - pos[edge_index[0]] + shifts
    vec.norm(dim=1).sum().backward()
    assert pos.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    pos, offsets, cell, pbc = _batch(_mixed_batch())
    cpu = radius_graph(pos, offsets, 5.0, cell, pbc)
    gpu = radius_graph(pos.cuda(), offsets.cuda(), 5.0, cell.cuda(), pbc.cuda())
    assert gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0])
    torch.testing.assert_close(gpu[1].cpu(), cpu[1])


def _inputs():
    pos = torch.zeros((2, 3), dtype=torch.float64)
    return (
        pos,
        torch.tensor([0, 2]),
        torch.eye(3, dtype=torch.float64)[None],
        torch.ones((1, 3), dtype=torch.bool),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cell": None}, "periodic structures need a cell"),
        ({"cell": torch.zeros((1, 3, 3), dtype=torch.float64)}, "singular"),
        ({"cell": torch.tensor([[[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]])}, "singular"),
        ({"cutoff": -1.0}, "cutoff"),
        ({"cutoff": float("nan")}, "cutoff"),
        ({"offsets": torch.tensor([0, 3])}, "offsets"),
        ({"offsets": torch.tensor([1, 2])}, "offsets"),
        ({"offsets": torch.tensor([0.0, 2.0])}, "offsets"),
        ({"positions": torch.zeros((2, 2))}, "positions"),
        ({"positions": torch.zeros((2, 3), dtype=torch.int64)}, "float32 or float64"),
        ({"positions": torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]])}, "non-finite position"),
        ({"pbc": torch.ones((2, 3), dtype=torch.bool)}, "pbc"),
        ({"cell": torch.zeros((1, 3))}, "cell"),
        ({"cell": torch.full((1, 3, 3), float("nan"))}, "non-finite cell"),
    ],
)
def test_bad_input_raises_input_error(change, message):
    pos, offsets, cell, pbc = _inputs()
    args = {"positions": pos, "offsets": offsets, "cutoff": 3.0, "cell": cell, "pbc": pbc}
    args.update(change)
    with pytest.raises(InputError, match=message):
        radius_graph(**args)


def test_singular_cell_error_names_the_structure():
    pos = torch.zeros((3, 3), dtype=torch.float64)
    cell = torch.stack(
        [torch.eye(3, dtype=torch.float64), torch.zeros((3, 3), dtype=torch.float64)]
    )
    pbc = torch.tensor([[True] * 3, [True, True, False]])
    with pytest.raises(InputError, match="structure 1"):
        radius_graph(pos, torch.tensor([0, 2, 3]), 3.0, cell, pbc)
