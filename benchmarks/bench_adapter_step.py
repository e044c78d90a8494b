"""Training-step time per molecule and peak memory of a bundled pretrained model (an adapter).

    python benchmarks/bench_adapter_step.py --pretrained so3lr --data-root data   # QM9, batch 32
    python benchmarks/bench_adapter_step.py --pretrained ani1x:0 --quick          # synthetic data

Two kinds of step, each in its own subprocess (peak memory is per process), both as
``atomcollapse train`` takes them (gradients into the parameters only, Adam):

- ``property``: a finetune step: backbone + a new property head (mean readout) on ``--target``;
- ``energy+forces``: the model's pretrained energy head with forces = -dE/dR in training mode (a
  second derivative), as MFT's force-field task. Force labels are zeros and energy labels the
  batch mean: this measures speed, not accuracy.

Batches of ``--batch-size`` molecules are drawn (seeded) from ``<data-root>/stores/<--data>``
(default ``qm9``), or from random QM9-like molecules when that store is absent (said so), and
collated with their radius graphs before the clock starts. Peak memory is the process's maximum
resident set size (``ru_maxrss``), printed with the resident size before the first step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _perf import perf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("property", "energy+forces")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> dict:
    """Build the model, collate the batches and time the steps (inside the measured process)."""
    import numpy as np
    import torch

    from atomcollapse.data.batching import collate
    from atomcollapse.data.store import open_store
    from atomcollapse.models import adapters
    from atomcollapse.models.heads import PropertyHead
    from atomcollapse.models.model import AtomisticModel
    from atomcollapse.training.loop import backward_to_params

    torch.set_num_threads(args.threads)
    model = adapters.load_pretrained(args.pretrained)
    elements = model.backbone.elements if hasattr(model.backbone, "elements") else None
    head = PropertyHead(model.backbone.feature_dim, readout="mean", seed=0)
    model = AtomisticModel(model.backbone, {**dict(model.heads), "property": head}).train()
    store = open_store(args.data, args.data_root)
    rows = np.arange(len(store))
    if elements is not None:
        rows, _ = adapters.rows_with_elements(store.numbers, store.offsets, rows, elements)
    rng = np.random.default_rng(0)
    n_batches = args.warmup + args.steps
    picks = [rng.choice(rows, size=args.batch_size, replace=False) for _ in range(n_batches)]
    t = time.perf_counter()
    batches = [collate(store, p, model.backbone.cutoff, targets=(args.target,)) for p in picks]
    collate_ms = 1e3 * (time.perf_counter() - t) / n_batches
    forces = args.child == "energy+forces"
    tasks = ("energy",) if forces else ("property",)
    unused = "heads.property." if forces else "heads.energy."
    params = [p for name, p in model.named_parameters() if not name.startswith(unused)]
    opt = torch.optim.Adam(params, lr=1e-5)
    rss_before, times = 0.0, []
    for k, batch in enumerate(batches):
        if k == args.warmup:
            rss_before = _rss_mib()
        t = time.perf_counter()
        out = model(batch, tasks=tasks, compute_forces=forces)
        if forces:
            n_atoms = (batch.offsets[1:] - batch.offsets[:-1]).to(out["energy"].dtype)
            energy = out["energy"] / n_atoms
            loss = (energy - energy.detach().mean()).square().mean() + out["forces"].square().mean()
        else:
            loss = (out["property"] - batch.labels[args.target]).square().mean()
        opt.zero_grad(set_to_none=True)
        backward_to_params(loss, params)
        opt.step()
        if k >= args.warmup:
            times.append(time.perf_counter() - t)
    step_ms = 1e3 * sum(times) / len(times)
    atoms = sum(int(b.numbers.numel()) for b in batches) / len(batches)
    return {"kind": args.child, "step_ms": step_ms, "ms_per_molecule": step_ms / args.batch_size,
            "atoms_per_batch": atoms, "collate_ms": collate_ms, "rss_before_steps_mib": rss_before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pretrained", required=True, help="a bundled model: so3lr, ani1x:0, ...")
    ap.add_argument("--data", default="qm9", help="store name or path (default qm9)")
    ap.add_argument("--data-root")
    ap.add_argument("--target", default="gap")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5 steps after 1 warm-up, batch 8")
    ap.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if args.quick:
        args.steps, args.warmup, args.batch_size = min(args.steps, 5), 1, min(args.batch_size, 8)
    from atomcollapse.data.store import MANIFEST, store_path

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data, what = args.data, f"store {args.data}"
        if not (store_path(args.data, args.data_root) / MANIFEST).is_file():
            from tests.training.synthetic import write_molecule_store

            data = str(write_molecule_store(Path(tmp) / "mols", n=4 * args.batch_size))
            args.target, what = "gap", "random QM9-like molecules"
            print(f"no store {args.data!r}: {what}")
        for kind in KINDS:
            cmd = [sys.executable, __file__, "--child", kind, "--pretrained", args.pretrained,
                   "--data", data, "--target", args.target, "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--threads", str(args.threads)]  # fmt: skip
            if args.data_root:
                cmd += ["--data-root", args.data_root]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"{kind} benchmark failed")
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    setting = f"{args.pretrained}, batch {args.batch_size}, {args.threads} threads, {what}"
    print(f"{setting}; {args.steps} timed steps after {args.warmup} warm-up")
    for r in results.values():
        print(f"{r['kind']:<14} step {r['step_ms']:8.1f} ms = {r['ms_per_molecule']:6.2f} "
              f"ms/molecule ({r['atoms_per_batch']:.0f} atoms/batch; collate {r['collate_ms']:.1f} "
              f"ms); peak RSS {r['peak_rss_mib']:.0f} MiB (before steps "
              f"{r['rss_before_steps_mib']:.0f} MiB)")  # fmt: skip
        perf("adapter_step", f"{r['kind']} step per molecule ({setting})",
             r["ms_per_molecule"], "ms", "lower")  # fmt: skip
        perf("adapter_step", f"{r['kind']} peak RSS ({setting})", r["peak_rss_mib"], "MiB",
             "lower")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main_())
