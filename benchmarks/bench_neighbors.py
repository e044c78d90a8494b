"""Neighbour-list benchmark: atomcollapse's radius_graph against ASE's neighbor_list.

    python benchmarks/bench_neighbors.py                 # 2,000 molecules, 500 crystals, 5 A
    python benchmarks/bench_neighbors.py --quick         # 200 molecules, 50 crystals
    python benchmarks/bench_neighbors.py --data-root data --crystal-store mattersim

Molecules are the first N of the QM9 store (``<data-root>/stores/qm9``) when it exists, else
random QM9-like molecules of 10-29 atoms. Crystals are random triclinic cells of 8-64 atoms
(10-20 A^3 per atom, atoms anywhere in the cell), or the periodic structures of a store named by
``--crystal-store``. ASE runs one structure at a time, as a user would; radius_graph runs on
batches of ``--batch-size`` structures already packed as tensors. Both must find the same number
of pairs. Pairs are directed edges (i, j, image).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _perf import perf
from ase import Atoms
from ase.neighborlist import neighbor_list

from atomcollapse.data.neighbors import radius_graph


def random_molecules(n: int, rng: np.random.Generator) -> list[Atoms]:
    """Compact random molecules of 10-29 atoms (radius of gyration ~2-3 A, like QM9)."""
    out = []
    for size in rng.integers(10, 30, n):
        pos = rng.normal(size=(size, 3)) * 0.6 * size ** (1 / 3)
        out.append(Atoms(numbers=rng.choice([1, 6, 7, 8, 9], size), positions=pos))
    return out


def random_crystals(n: int, rng: np.random.Generator) -> list[Atoms]:
    """Random triclinic cells of 8-64 atoms at 10-20 A^3 per atom, positions not wrapped."""
    out = []
    for size in rng.integers(8, 65, n):
        cell = np.eye(3) + rng.uniform(-0.35, 0.35, (3, 3))
        cell *= (size * rng.uniform(10, 20) / abs(np.linalg.det(cell))) ** (1 / 3)
        frac = rng.uniform(-0.2, 1.2, (size, 3))
        out.append(Atoms(numbers=[14] * size, positions=frac @ cell, cell=cell, pbc=True))
    return out


def store_structures(name: str, n: int, root: Path, periodic: bool) -> list[Atoms] | None:
    """The first ``n`` structures of a store (only periodic ones if asked), or None if absent."""
    from atomcollapse.data.store import open_store, store_path

    if not (store_path(name, root) / "manifest.json").is_file():
        return None
    store = open_store(name, root)
    out = []
    for view in store:
        if len(out) == n:
            break
        if periodic and not np.asarray(view.pbc).any():
            continue
        out.append(view.to_ase())
    return out


def pack(structures: list[Atoms], device: str) -> tuple[torch.Tensor, ...]:
    pos = torch.tensor(np.concatenate([a.positions for a in structures]), device=device)
    offsets = torch.tensor(np.cumsum([0] + [len(a) for a in structures]), device=device)
    cell = torch.tensor(np.stack([a.cell.array for a in structures]), device=device)
    pbc = torch.tensor(np.stack([a.pbc for a in structures]), device=device)
    return pos, offsets, cell, pbc


def time_ase(structures: list[Atoms], cutoff: float) -> tuple[float, int]:
    t0 = time.perf_counter()
    pairs = sum(len(neighbor_list("i", a, cutoff)) for a in structures)
    return time.perf_counter() - t0, pairs


def time_ours(structures: list[Atoms], cutoff: float, batch: int, device: str) -> tuple[float, int]:
    batches = [pack(structures[k : k + batch], device) for k in range(0, len(structures), batch)]
    radius_graph(*batches[0][:2], cutoff, *batches[0][2:])  # warm-up
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    pairs = 0
    for pos, offsets, cell, pbc in batches:
        pairs += radius_graph(pos, offsets, cutoff, cell, pbc)[0].shape[1]
    sync()
    return time.perf_counter() - t0, pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 molecules and 50 crystals")
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--crystals", type=int, default=500)
    parser.add_argument("--cutoff", type=float, default=5.0, help="Angstrom")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-root", type=Path, default=None, help="holds stores/qm9")
    parser.add_argument("--crystal-store", default=None, help="store of periodic structures")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.molecules, args.crystals = min(args.molecules, 200), min(args.crystals, 50)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    mols = store_structures("qm9", args.molecules, args.data_root, periodic=False)
    mol_label = "qm9 store" if mols else "random QM9-like"
    mols = mols or random_molecules(args.molecules, rng)
    crys = None
    if args.crystal_store:
        crys = store_structures(args.crystal_store, args.crystals, args.data_root, periodic=True)
        if crys is None:
            parser.error(f"store {args.crystal_store!r} not found under {args.data_root or 'data'}")
        if not crys:
            parser.error(f"store {args.crystal_store!r} holds no periodic structures")
    crys_label = f"{args.crystal_store} store" if crys else "random triclinic"
    crys = crys or random_crystals(args.crystals, rng)

    print(f"cutoff {args.cutoff} A, batch {args.batch_size}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    header = f"{'set':<26}{'structs':>8}{'pairs':>11}{'ASE pairs/s':>14}{'ours pairs/s':>14}"
    print(header + f"{'atomcollapse / ASE':>20}")
    for label, structures in (
        (f"molecules ({mol_label})", mols),
        (f"crystals ({crys_label})", crys),
    ):
        t_ase, n_ase = time_ase(structures, args.cutoff)
        t_ours, n_ours = time_ours(structures, args.cutoff, args.batch_size, args.device)
        if n_ase != n_ours:
            raise SystemExit(f"{label}: pair counts differ (ASE {n_ase}, atomcollapse {n_ours})")
        print(f"{label:<26}{len(structures):>8}{n_ours:>11}{n_ase / t_ase:>14.3g}"
              f"{n_ours / t_ours:>14.3g}{t_ase / t_ours:>20.1f}")  # fmt: skip
        perf("neighbors", f"{label}, {len(structures)} structures, {args.cutoff} A",
             n_ours / t_ours, "pairs/s", "higher", "ASE neighbor_list", n_ase / t_ase)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
