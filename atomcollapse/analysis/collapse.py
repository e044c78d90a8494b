"""Chemical-environment classes and the seeded sample of atoms and pairs that collapse measures use.

Atom classes (the study's ten): element x coordination number, C4 C3 C2 H F O2 O1 N3 N2 N1.
Two atoms are bonded when ``d < BOND_FACTOR * (r_i + r_j)`` with Cordero covalent radii
(:func:`atomcollapse.constants.covalent_radius`); ``BOND_FACTOR = 1.15`` takes every C–H, C–C,
C–N, C–O, N–H, O–H and C–F bond of QM9-like molecules (at most 1.55 A for C–C, 1.75 A allowed)
and no 1,3-neighbour (>= 2.1 A for heavy atoms, 1.7 A for H..H in CH3 against a 0.71 A limit).
Atoms of other elements or coordinations (C1, N4, O3, ...) are left out.

Edge classes (the study's six): C–O and C–H pairs of one structure that are bonded, 3–4 A apart,
or 5–6 A apart (half-open intervals [3, 4) and [5, 6)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from atomcollapse.constants import covalent_radius
from atomcollapse.data.neighbors import radius_graph

BOND_FACTOR = 1.15
ATOM_CLASSES: tuple[str, ...] = ("C4", "C3", "C2", "H", "F", "O2", "O1", "N3", "N2", "N1")
EDGE_CLASSES: tuple[str, ...] = (
    "C-O bonded", "C-O 3-4 A", "C-O 5-6 A", "C-H bonded", "C-H 3-4 A", "C-H 5-6 A",
)  # fmt: skip
#: Largest pair distance an edge class needs (A): a backbone's own edge features are used only
#: when its cutoff reaches this far.
EDGE_MAX_DISTANCE = 6.0
_ELEMENT_CLASSES = {
    6: {4: "C4", 3: "C3", 2: "C2"},
    8: {2: "O2", 1: "O1"},
    7: {3: "N3", 2: "N2", 1: "N1"},
}
_RADII = np.array([covalent_radius(z) for z in range(119)])


_MAX_CN = 16
_LUT = np.full((119, _MAX_CN + 1), -1, dtype=np.int64)
_LUT[1, :] = ATOM_CLASSES.index("H")
_LUT[9, :] = ATOM_CLASSES.index("F")
for _z, _by_cn in _ELEMENT_CLASSES.items():
    for _cn, _name in _by_cn.items():
        _LUT[_z, _cn] = ATOM_CLASSES.index(_name)


def atom_labels(numbers: np.ndarray, coordination: np.ndarray) -> np.ndarray:
    """Index into :data:`ATOM_CLASSES` of each atom, -1 when it belongs to none."""
    z = np.asarray(numbers, dtype=np.int64)
    cn = np.minimum(np.asarray(coordination, dtype=np.int64), _MAX_CN)
    return _LUT[z, cn]


def atom_class_names(numbers: np.ndarray, coordination: np.ndarray) -> list[str]:
    """Class name of each atom ('' when it belongs to none of :data:`ATOM_CLASSES`)."""
    return [ATOM_CLASSES[k] if k >= 0 else "" for k in atom_labels(numbers, coordination)]


def _graph(numbers, positions, offsets, cell, pbc, cutoff):
    pos = torch.tensor(np.asarray(positions, dtype=np.float64))
    off = torch.tensor(np.asarray(offsets, dtype=np.int64))
    c = None if cell is None else torch.tensor(np.asarray(cell, dtype=np.float64))
    p = None if pbc is None else torch.tensor(np.asarray(pbc, dtype=bool))
    ei, sh = radius_graph(pos, off, cutoff, cell=c, pbc=p)
    ei, sh = ei.numpy(), sh.numpy()
    vec = np.asarray(positions)[ei[1]] - np.asarray(positions)[ei[0]] + sh
    return ei, sh, np.linalg.norm(vec, axis=1)


def coordination_numbers(
    numbers: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    factor: float = BOND_FACTOR,
) -> np.ndarray:
    """Bonded neighbours of every atom of packed structures (see the module docstring)."""
    z = np.asarray(numbers, dtype=np.int64)
    if not z.size:
        return np.zeros(0, dtype=np.int64)
    cutoff = factor * 2.0 * float(_RADII[np.unique(z)].max()) + 1e-6
    ei, _, d = _graph(z, positions, offsets, cell, pbc, cutoff)
    bonded = d < factor * (_RADII[z[ei[0]]] + _RADII[z[ei[1]]])
    return np.bincount(ei[0][bonded], minlength=z.size)


def pair_classes(
    numbers: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None,
    factor: float = BOND_FACTOR,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """C–O and C–H pairs in :data:`EDGE_CLASSES`: ``(i, j, shift, class index)``.

    ``i`` is the carbon, ``j`` the O or H (global atom indices), ``shift`` (E, 3) A the periodic
    image shift, so that the pair vector is ``positions[j] - positions[i] + shift``.
    """
    z = np.asarray(numbers, dtype=np.int64)
    ei, sh, d = _graph(z, positions, offsets, cell, pbc, EDGE_MAX_DISTANCE)
    zi, zj = z[ei[0]], z[ei[1]]
    partner = np.where((zi == 6) & (zj == 8), 0, np.where((zi == 6) & (zj == 1), 3, -1))
    bonded = d < factor * (_RADII[zi] + _RADII[zj])
    band = np.where(bonded, 0, np.where((d >= 3) & (d < 4), 1, np.where((d >= 5) & (d < 6), 2, -1)))
    keep = (partner >= 0) & (band >= 0)
    return ei[0][keep], ei[1][keep], sh[keep], (partner + band)[keep]


@dataclass
class Sample:
    """Atoms and pairs picked for collapse measures; identical for every model compared.

    Atom ``k`` is atom ``atom_local[k]`` of store structure ``atom_structure[k]``; pair ``k`` joins
    local atoms ``edge_i[k]`` (C) and ``edge_j[k]`` (O or H) of ``edge_structure[k]``.
    Class labels index :data:`ATOM_CLASSES` / :data:`EDGE_CLASSES`.
    """

    atom_structure: np.ndarray
    atom_local: np.ndarray
    atom_label: np.ndarray
    edge_structure: np.ndarray
    edge_i: np.ndarray
    edge_j: np.ndarray
    edge_shift: np.ndarray
    edge_distance: np.ndarray
    edge_label: np.ndarray

    @property
    def structures(self) -> np.ndarray:
        """Sorted store rows of every structure holding a sampled atom or pair."""
        return np.unique(np.concatenate([self.atom_structure, self.edge_structure]))

    def atom_counts(self) -> dict[str, int]:
        counts = np.bincount(self.atom_label, minlength=len(ATOM_CLASSES))
        return dict(zip(ATOM_CLASSES, counts.tolist(), strict=True))

    def edge_counts(self) -> dict[str, int]:
        counts = np.bincount(self.edge_label, minlength=len(EDGE_CLASSES))
        return dict(zip(EDGE_CLASSES, counts.tolist(), strict=True))


_CLASS_ELEMENT = np.array([6, 6, 6, 1, 9, 8, 8, 7, 7, 7])  # element of each ATOM_CLASSES entry


def _atom_index(lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(lo[k], lo[k] + counts[k])`` without a Python loop."""
    starts = np.cumsum(counts) - counts
    return np.repeat(lo - starts, counts) + np.arange(int(counts.sum()))


def _relevant(store, part: np.ndarray, offsets: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Structures of ``part`` holding at least one atom of ``elements``."""
    counts = offsets[part + 1] - offsets[part]
    z = np.asarray(store.numbers[_atom_index(offsets[part], counts)])
    hits = np.add.reduceat(np.isin(z, elements).astype(np.int64), np.cumsum(counts) - counts)
    return part[hits > 0]


def sample_environments(
    store,
    rows: np.ndarray | None = None,
    *,
    max_per_class: int = 2000,
    seed: int = 0,
    chunk: int = 512,
    factor: float = BOND_FACTOR,
) -> Sample:
    """Seeded sample of up to ``max_per_class`` atoms per atom class and pairs per edge class.

    Structures (``rows`` of the store, default all) are visited in a seeded random order;
    structures without an element that a still-unfilled class needs are skipped, the rest are
    classified in chunks. Inside a chunk candidates are shuffled and each class takes what it
    still needs, so common classes come from few structures and rare ones are searched for.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(store)) if rows is None else np.asarray(rows, dtype=np.int64)
    order = rng.permutation(rows)
    need_a = np.full(len(ATOM_CLASSES), max_per_class)
    need_e = np.full(len(EDGE_CLASSES), max_per_class)
    atoms: list[tuple[np.ndarray, ...]] = []
    edges: list[tuple[np.ndarray, ...]] = []
    offsets_all = np.asarray(store.offsets)
    for block in range(0, len(order), 16 * chunk):
        pending = order[block : block + 16 * chunk]
        while len(pending):
            if not (need_a.any() or need_e.any()):
                return _assemble(atoms, edges)
            wanted = np.append(_CLASS_ELEMENT[need_a > 0], [6] if need_e.any() else [])
            pending = _relevant(store, pending, offsets_all, np.unique(wanted))
            part, pending = pending[:chunk], pending[chunk:]
            if len(part):
                _classify_chunk(store, part, offsets_all, need_a, need_e, atoms, edges, rng, factor)
    return _assemble(atoms, edges)


def _classify_chunk(store, part, offsets_all, need_a, need_e, atoms, edges, rng, factor) -> None:
    counts = offsets_all[part + 1] - offsets_all[part]
    off = np.concatenate([[0], np.cumsum(counts)])
    gidx = _atom_index(offsets_all[part], counts)
    z = np.asarray(store.numbers[gidx], dtype=np.int64)
    pos = np.asarray(store.positions[gidx], dtype=np.float64)
    cell, pbc = np.asarray(store.cell[part]), np.asarray(store.pbc[part])
    owner = np.repeat(np.arange(len(part)), counts)
    local = np.arange(len(z)) - off[owner]
    if need_a.any():
        label = atom_labels(z, coordination_numbers(z, pos, off, cell, pbc, factor))
        pick = _take(label, need_a, rng)
        atoms.append((part[owner[pick]], local[pick], label[pick]))
    if need_e.any():
        i, j, sh, lab = pair_classes(z, pos, off, cell, pbc, factor)
        pick = _take(lab, need_e, rng)
        i, j, sh = i[pick], j[pick], sh[pick]
        dist = np.linalg.norm(pos[j] - pos[i] + sh, axis=1)
        edges.append((part[owner[i]], local[i], local[j], sh, dist, lab[pick]))


def _take(label: np.ndarray, need: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffled candidate positions, at most ``need[c]`` of class ``c``; decrements ``need``."""
    perm = rng.permutation(len(label))
    picked = []
    for c in range(len(need)):
        if need[c] <= 0:
            continue
        cand = perm[label[perm] == c][: need[c]]
        need[c] -= len(cand)
        picked.append(cand)
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _assemble(atoms: list, edges: list) -> Sample:
    def cat(parts: list, k: int, shape: tuple = (0,), dtype=np.int64) -> np.ndarray:
        return np.concatenate([p[k] for p in parts]) if parts else np.zeros(shape, dtype=dtype)

    s = Sample(
        atom_structure=cat(atoms, 0), atom_local=cat(atoms, 1), atom_label=cat(atoms, 2),
        edge_structure=cat(edges, 0), edge_i=cat(edges, 1), edge_j=cat(edges, 2),
        edge_shift=cat(edges, 3, (0, 3), np.float64), edge_distance=cat(edges, 4, (0,), np.float64),
        edge_label=cat(edges, 5),
    )  # fmt: skip
    a = np.lexsort((s.atom_local, s.atom_structure, s.atom_label))
    e = np.lexsort((s.edge_j, s.edge_i, s.edge_structure, s.edge_label))
    return Sample(
        s.atom_structure[a], s.atom_local[a], s.atom_label[a], s.edge_structure[e], s.edge_i[e],
        s.edge_j[e], s.edge_shift[e], s.edge_distance[e], s.edge_label[e],
    )  # fmt: skip


@dataclass
class CollapseResult:
    """Measures per model and embedding set, and the t-SNE coordinates behind the plots."""

    rows: list[dict]
    tsne: dict[str, dict[str, np.ndarray]]  # set ("atoms"/"edges") -> model -> (n, 2)


def compare_models(
    embeddings: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    *,
    reference: str,
    seed: int = 0,
    tsne: bool = True,
    tsne_max_iter: int = 1000,
    n_projections: int = 128,
    threads: int | None = None,
    tsne_backend: str = "auto",
) -> CollapseResult:
    """Collapse measures of every model against ``reference`` (the pretrained model).

    ``embeddings[model][set]`` are (n, F) arrays whose rows are the same atoms (or pairs) in
    every model; ``labels[set]`` their class indices. Ratios are model / reference (> 1: the
    classes overlap more than in the pretrained model). ``threads`` caps BLAS/OpenMP threads;
    ``tsne_backend`` is :func:`~atomcollapse.analysis.measures.tsne_2d`'s ``backend``.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return _compare(embeddings, labels, reference, seed, tsne, tsne_max_iter, n_projections,
                        threads, tsne_backend)  # fmt: skip


def _compare(embeddings, labels, reference, seed, tsne, tsne_max_iter, n_projections, threads,
             tsne_backend):  # fmt: skip
    from atomcollapse.analysis import measures as ms

    rows: list[dict] = []
    coords: dict[str, dict[str, np.ndarray]] = {}
    ref = embeddings[reference]
    for set_name, lab in labels.items():
        coords[set_name] = {}
        db_ref: dict[str, float] = {}
        for model, sets in embeddings.items():
            x = sets[set_name]
            row: dict = {"model": model, "set": set_name, "n": len(x), "dim": x.shape[1]}
            row["db_raw"] = ms.davies_bouldin(x, lab) if len(x) else float("nan")
            if tsne and len(x):
                xy = ms.tsne_2d(x, seed=seed, max_iter=tsne_max_iter, threads=threads,
                                backend=tsne_backend)  # fmt: skip
                coords[set_name][model] = xy
                row["db_tsne"] = ms.davies_bouldin(xy, lab)
            else:
                row["db_tsne"] = float("nan")
            if model == reference:
                db_ref = {"db_raw": row["db_raw"], "db_tsne": row["db_tsne"]}
            r = ref[set_name]
            row["w1_per_dim"] = ms.wasserstein_per_dim(r, x)
            row["w1_sliced"] = ms.sliced_wasserstein(r, x, n_projections=n_projections, seed=seed)
            row["cka"] = ms.linear_cka(r, x)
            rows.append(row)
        for row in rows:
            if row["set"] == set_name:
                for k in ("db_raw", "db_tsne"):
                    base = db_ref.get(k, float("nan"))
                    row[f"{k}_ratio"] = (
                        row[k] / base if base and np.isfinite(base) else float("nan")
                    )
    return CollapseResult(rows=rows, tsne=coords)
