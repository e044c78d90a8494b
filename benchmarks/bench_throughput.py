"""Training throughput (molecules/s) of atomcollapse's PaiNN against schnetpack's PaiNN.

Same data, same hyperparameters (hidden 128, 3 layers, 20 sine radial functions, cutoff 5 A,
sum readout through a 128-64-1 MLP, Adam), same threads and allocator settings, in one run:

- ``model``: training steps on pre-collated batches (neighbour lists already built);
- ``data``: the same, with each side's own data pipeline counted (ours: what ``atomcollapse
  train`` runs, a ``BatchStream`` of store rows and ``PropertyTask.make_batch``, i.e. ``collate``
  with ``radius_graph``; schnetpack: ``ASEAtomsData`` + ``AtomsLoader`` with its
  neighbour-list transform and ``CastTo32``);

for ``property`` (one target) and ``forces`` (energy + forces = -dE/dR, trained through a second
derivative). Each side steps as its own training does: ours backpropagates into the parameters
only, as ``atomcollapse train`` does (``backward_to_params``); schnetpack's step is the plain
``loss.backward()`` of its Lightning task, which also fills the positions' gradient.

Data: ``<data-root>/stores/qm9`` when it exists (first ``--n`` molecules, gap / U0), else random
QM9-like molecules written to a temporary store. Force labels are zeros: this measures speed, not
accuracy.

schnetpack 2.1.1 must be installed with ``--no-deps`` (see ``REFERENCES.md``); without it only
our numbers are printed. glibc hands big freed blocks back to the OS, so big per-message tensors
are page-faulted in every step; the script re-executes itself with the allocator settings of the
``atomcollapse`` command (``ALLOCATOR_ENV``), so both sides run under them
(``--default-allocator`` keeps glibc's defaults for both).

    python benchmarks/bench_throughput.py --quick
    python benchmarks/bench_throughput.py --n 10000 --batch-sizes 32 128
    python benchmarks/bench_throughput.py --device cuda   # both sides on the GPU
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from _perf import perf

from atomcollapse.cli import ALLOCATOR_ENV, allocator_env
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.schema import pack
from atomcollapse.data.store import Store, data_root, open_store, write_store
from atomcollapse.models.heads import EnergyHead, PropertyHead
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from atomcollapse.training.loop import backward_to_params
from atomcollapse.training.streams import BatchStream
from atomcollapse.training.tasks import PropertyTask

MODES = ("property", "forces")
PIPELINES = ("model", "data")
LABELS = {"property": "property only", "forces": "energy+forces",
          "model": "model only", "data": "with data pipeline"}  # fmt: skip
SPK_NAME = "schnetpack 2.1.1 PaiNN"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None, help="folder holding stores/ (default ./data)")
    p.add_argument("--n", type=int, default=10_000, help="molecules")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--n-rbf", type=int, default=20)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (both sides)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is kept")
    p.add_argument("--spk-neighbors", choices=("matscipy", "ase"), default="matscipy")
    p.add_argument("--no-schnetpack", action="store_true")
    p.add_argument("--default-allocator", action="store_true",
                   help="keep glibc's malloc thresholds (both sides)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny run: 192 molecules, 2 timed steps")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"bench_throughput: --device {args.device}: no CUDA device is available",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    if args.quick:
        args.n, args.steps, args.warmup, args.rounds = min(args.n, 192), 2, 1, 1
    return args


def random_molecules(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """QM9-like molecules: 10-27 H/C/N/O/F atoms, >= 0.95 A apart, about 2.5 A in radius."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij"), -1).reshape(-1, 3) * 1.25
    numbers, positions = [], []
    for _ in range(n):
        k = int(rng.integers(10, 28))
        radius = 1.25 * (k / (4 / 3 * np.pi)) ** (1 / 3) + 0.6
        sites = grid[np.linalg.norm(grid, axis=1) <= radius]
        pos = sites[rng.choice(len(sites), size=min(k, len(sites)), replace=False)]
        positions.append(pos + rng.uniform(-0.15, 0.15, size=pos.shape))
        numbers.append(rng.choice([1, 1, 6, 7, 8, 9], size=len(pos)))
    return numbers, positions


def load_data(args: argparse.Namespace, tmp: Path) -> tuple[Store, np.ndarray, str, str, str]:
    """(store, indices, property target, energy target, description)."""
    qm9 = data_root(args.data_root) / "stores" / "qm9"
    if (qm9 / "manifest.json").is_file():
        store = open_store(qm9)
        return store, np.arange(min(args.n, len(store))), "gap", "u0", f"QM9 store ({qm9})"
    numbers, positions = random_molecules(args.n)
    s = pack(numbers, positions, ids=[f"r{i}" for i in range(args.n)])
    rng = np.random.default_rng(1)
    s.targets = {"y": rng.normal(size=args.n), "energy": rng.normal(size=args.n)}
    s.target_units = {"y": "eV", "energy": "eV"}
    path = write_store(
        s, tmp / "synthetic", name="synthetic", kind="molecules", source={"format": "bench"}
    )
    return open_store(path), np.arange(args.n), "y", "energy", "random QM9-like molecules"


def forever(make_iter: Callable[[int], Iterator]) -> Iterator:
    epoch = 0
    while True:
        yield from make_iter(epoch)
        epoch += 1


# ---------------------------------------------------------------- ours


def ours_model(args: argparse.Namespace, mode: str) -> AtomisticModel:
    backbone = PaiNN(hidden=args.hidden, layers=args.layers, n_rbf=args.n_rbf, cutoff=args.cutoff)
    head = EnergyHead(args.hidden) if mode == "forces" else PropertyHead(args.hidden, readout="sum")
    model = AtomisticModel(backbone, {"energy" if mode == "forces" else "property": head})
    return model.to(args.device).train()


def ours_step(
    model: AtomisticModel,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    batch: AtomsBatch,
    mode: str,
) -> None:
    opt.zero_grad(set_to_none=True)
    if mode == "forces":
        out = model(batch, tasks=("energy",), compute_forces=True)
        (label,) = (v for k, v in batch.labels.items() if k != "forces")
        loss = ((out["energy"] - label) ** 2).mean() + (out["forces"] ** 2).mean()
    else:
        out = model(batch, tasks=("property",))
        (label,) = batch.labels.values()
        loss = ((out["property"] - label) ** 2).mean()
    backward_to_params(loss, params)  # as the training loop does
    opt.step()


# ---------------------------------------------------------------- schnetpack


def import_schnetpack():
    """schnetpack 2.1.1 imports ``T_co`` that torch 2.13 no longer defines: shim it here only."""
    import torch.utils.data.dataloader as dl

    if not hasattr(dl, "T_co"):
        dl.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack

    return schnetpack


def spk_model(spk, args: argparse.Namespace, mode: str):
    rep = spk.representation.PaiNN(
        n_atom_basis=args.hidden, n_interactions=args.layers,
        radial_basis=spk.nn.BesselRBF(n_rbf=args.n_rbf, cutoff=args.cutoff),
        cutoff_fn=spk.nn.CosineCutoff(args.cutoff),
    )  # fmt: skip
    outputs = [spk.atomistic.Atomwise(n_in=args.hidden, output_key="y")]
    if mode == "forces":
        outputs.append(spk.atomistic.Forces(energy_key="y", force_key="forces"))
    return (
        spk.model.NeuralNetworkPotential(
            representation=rep,
            input_modules=[spk.atomistic.PairwiseDistances()],
            output_modules=outputs,
        )
        .to(args.device)
        .train()
    )


def spk_dataset(spk, store: Store, indices: np.ndarray, target: str, args, tmp: Path):
    from ase import Atoms

    path = str(tmp / f"spk-{target}.db")
    if not os.path.exists(path):
        data = spk.data.ASEAtomsData.create(
            path, distance_unit="Ang", property_unit_dict={"y": "eV", "forces": "eV/Ang"}
        )
        values = np.asarray(store.target(target))
        atoms, props = [], []
        for i in indices:
            s = store.structure(int(i))
            atoms.append(Atoms(numbers=np.asarray(s.numbers), positions=np.asarray(s.positions)))
            props.append({"y": np.array([values[i]]), "forces": np.zeros((len(s.numbers), 3))})
        data.add_systems(props, atoms)
    nl = (
        spk.transform.MatScipyNeighborList
        if args.spk_neighbors == "matscipy"
        else spk.transform.ASENeighborList
    )
    return spk.data.ASEAtomsData(
        path, transforms=[nl(cutoff=args.cutoff), spk.transform.CastTo32()]
    )


def spk_step(model, opt: torch.optim.Optimizer, inputs: dict, mode: str) -> None:
    opt.zero_grad(set_to_none=True)
    inputs = dict(inputs)
    inputs["_positions"] = inputs["_positions"].detach().clone()
    out = model(inputs)
    loss = ((out["y"] - inputs["y"]) ** 2).mean()
    if mode == "forces":
        loss = loss + ((out["forces"] - inputs["forces"]) ** 2).mean()
    loss.backward()
    opt.step()


# ---------------------------------------------------------------- timing


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(
    step: Callable[[object], None], batches: Iterator, n_steps: int, n_mol: Callable, device: str
) -> float:
    """Molecules per second over ``n_steps`` steps, drawing (and so collating) inside the clock."""
    molecules = 0
    sync(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        b = next(batches)
        step(b)
        molecules += n_mol(b)
    sync(device)
    return molecules / (time.perf_counter() - start)


@dataclass
class Side:
    """One model under test: its training step, batch sources and a molecule counter."""

    step: Callable[[object], None]
    stream: Callable[[], Iterator]  # batches through the data pipeline, epoch after epoch
    count: Callable[[object], int]
    pre: list = field(default_factory=list)  # pre-collated batches for the model-only timing

    def batches(self, pipeline: str) -> Iterator:
        return itertools.cycle(self.pre) if pipeline == "model" else self.stream()


def ours_side(args, mode: str, store: Store, indices: np.ndarray, target: str, bs: int) -> Side:
    torch.manual_seed(0)
    model = ours_model(args, mode)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    # the batches ``atomcollapse train`` makes: its row stream and its task's collation
    task = PropertyTask(store, target, args.cutoff, torch.device(args.device), scale=1.0)

    def stream() -> Iterator[AtomsBatch]:
        rows = BatchStream(indices, bs, seed=0, n_atoms=store.n_atoms)
        while True:
            yield task.make_batch(rows.next()[0])

    side = Side(
        step=lambda b: ours_step(model, opt, params, b, mode),
        stream=stream,
        count=lambda b: b.n_structures,
    )
    side.pre = list(itertools.islice(side.stream(), args.warmup + args.steps))
    return side


def spk_side(spk, args, mode: str, data, bs: int) -> Side:
    torch.manual_seed(0)
    model = spk_model(spk, args, mode)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def epoch(_: int) -> Iterator:
        return iter(spk.data.AtomsLoader(data, batch_size=bs, shuffle=True, drop_last=True))

    side = Side(
        step=lambda b: spk_step(model, opt, b, mode),
        stream=lambda: ({k: v.to(args.device) for k, v in b.items()} for b in forever(epoch)),
        count=lambda b: int(b["_n_atoms"].numel()),
    )
    side.pre = list(itertools.islice(side.stream(), args.warmup + args.steps))
    return side


def compare(args, sides: dict[str, Side], pipeline: str) -> dict[str, float]:
    """Median molecules/s per side over alternating rounds, after a warm-up."""
    for side in sides.values():
        timed(side.step, side.batches(pipeline), args.warmup, side.count, args.device)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            rates[name].append(
                timed(side.step, side.batches(pipeline), args.steps, side.count, args.device)
            )
    return {name: statistics.median(r) for name, r in rates.items()}


def run(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    spk, spk_note = None, "skipped: --no-schnetpack"
    if not args.no_schnetpack:
        try:
            spk = import_schnetpack()
        except ImportError as e:
            print(f"schnetpack not importable ({e}); timing ours only", file=sys.stderr)
            missing = getattr(e, "name", None) == "schnetpack"
            spk_note = f"skipped: schnetpack {'not installed' if missing else f'failed ({e})'}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store, indices, prop_target, energy_target, desc = load_data(args, tmp)
        alloc = " ".join(f"{k}={os.environ.get(k, 'default')}" for k in ALLOCATOR_ENV)
        where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
        print(f"data: {desc}, {len(indices)} molecules; {where}, threads {args.threads}; {alloc}")
        print(f"{'mode':>9} {'batch':>5} {'input':>6} {'ours/s':>10} {'spk/s':>10}  ratio")
        for mode in args.modes:
            target = energy_target if mode == "forces" else prop_target
            spk_data = spk_dataset(spk, store, indices, target, args, tmp) if spk else None
            for bs in args.batch_sizes:
                sides = {"ours": ours_side(args, mode, store, indices, target, bs)}
                if spk:
                    sides["schnetpack"] = spk_side(spk, args, mode, spk_data, bs)
                for pipeline in args.pipelines:
                    row = {"mode": mode, "batch": bs, "pipeline": pipeline}
                    row.update(compare(args, sides, pipeline))
                    rows.append(row)
                    print_row(row)
                    perf("throughput", f"PaiNN {LABELS[mode]}, batch {bs}, {LABELS[pipeline]}",
                         row["ours"], "molecules/s", "higher", SPK_NAME, row.get("schnetpack"),
                         note=None if spk else spk_note)  # fmt: skip
    return rows


def print_row(row: dict) -> None:
    ours, theirs = row["ours"], row.get("schnetpack")
    ratio = f"{ours / theirs:6.2f}x" if theirs else "     -"
    spk_txt = f"{theirs:10.1f}" if theirs else "         -"
    print(
        f"{row['mode']:>9} {row['batch']:>5} {row['pipeline']:>6} {ours:10.1f} {spk_txt} {ratio}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = None if args.default_allocator else allocator_env()
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
