"""Optimiser-step time and peak memory of ``mft`` against ``finetune``, each in its own process.

    python benchmarks/bench_mft_step.py --quick                      # synthetic data, seconds
    python benchmarks/bench_mft_step.py                              # synthetic data, 50 steps
    python benchmarks/bench_mft_step.py --data qm9 --split splits/qm9/property-tail-gap \
        --target gap --pretrained ckpt.pt --ff-data <ff-store> --steps 50

Each strategy runs in a fresh subprocess: it builds the run exactly as ``atomcollapse train``
does, takes ``--warmup`` steps, then times ``--steps`` optimiser steps (for mft also split by the
task each step drew). Peak memory is the process's maximum resident set size (``ru_maxrss``),
printed with the resident size before the first step so the training part can be read off.
Prints the ratios mft / finetune. Without ``--data``/``--split``/``--pretrained``/``--ff-data``
a tiny synthetic molecule store, force-field store and checkpoint are made (and said so).
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


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> dict:
    """Build the run and time its steps (runs inside the measured subprocess)."""
    import torch

    from atomcollapse.training.config import load_config
    from atomcollapse.training.tasks import resolve_device
    from atomcollapse.training.train import TrainInputs, build_session, check_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"target": args.target, "strategy.name": args.child,
                 "steps": args.warmup + args.steps, "device": args.device}  # fmt: skip
    if args.batch_size is not None:
        overrides["batch_size"] = (
            int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
        )
    if args.ff_batch_size is not None and args.child == "mft":
        fb = args.ff_batch_size
        overrides["strategy.ff_batch_size"] = int(fb) if fb.isdigit() else fb
    cfg = load_config(None, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        inp = TrainInputs(data=args.data, split=Path(args.split), out=Path(tmp) / "run",
                          pretrained=Path(args.pretrained), data_root=args.data_root,
                          ff_data=args.ff_data if args.child == "mft" else None)  # fmt: skip
        checked = check_inputs(inp, cfg)
        from atomcollapse.training.distributed import DistInfo

        dev = resolve_device(cfg.device)
        sess = build_session(inp, cfg, checked, DistInfo(), dev)
        loop = sess.loop
        sess.model.train()
        for _ in range(args.warmup):
            loop.step()
        rss_before = _rss_mib()
        times: dict[str, list[float]] = {}
        for _ in range(args.steps):
            kind = "+".join(t for t, _ in loop.strategy.tasks(loop.state.step))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            loop.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.setdefault(kind, []).append(time.perf_counter() - t)
    every = [x for v in times.values() for x in v]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"strategy": args.child, "step_ms": 1e3 * sum(every) / len(every),
            "by_task_ms": {k: 1e3 * sum(v) / len(v) for k, v in times.items()},
            "by_task_n": {k: len(v) for k, v in times.items()},
            "rss_before_steps_mib": rss_before, "peak_rss_mib": peak}  # fmt: skip


def _prepare_synthetic(folder: Path) -> dict[str, str]:
    from atomcollapse.cli import main
    from benchmarks.all_strategies import synthetic_inputs

    inputs = synthetic_inputs(folder)
    ckpt = folder / "pretrained.pt"
    rc = main(["pretrain", "--data", inputs["ff_data"], "--out", str(ckpt), "--hidden", "16",
               "--layers", "2", "--epochs", "1", "--no-progress", "--device", "cpu"])  # fmt: skip
    if rc:
        raise SystemExit("pretraining the synthetic checkpoint failed")
    return {**inputs, "pretrained": str(ckpt)}


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--split")
    ap.add_argument("--target", default="gap")
    ap.add_argument("--pretrained")
    ap.add_argument("--ff-data")
    ap.add_argument("--data-root")
    ap.add_argument("--batch-size", help="structures, or auto:N (default: the config's auto:512)")
    ap.add_argument("--ff-batch-size", help="mft's force-field batch (default: auto:128)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="20 steps, batch 8.")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    given = [args.data, args.split, args.pretrained, args.ff_data]
    if any(given) and not all(given):
        ap.error("give all of --data, --split, --pretrained and --ff-data, or none (synthetic)")
    data_desc = f"{args.data}, target {args.target}" if all(given) else "synthetic data"
    with tempfile.TemporaryDirectory() as tmp:
        if not all(given):
            print("no --data/--split/--pretrained/--ff-data: synthetic data and checkpoint")
            inputs = _prepare_synthetic(Path(tmp))
            args.data, args.split, args.ff_data = inputs["data"], inputs["split"], inputs["ff_data"]
            args.pretrained, args.target = inputs["pretrained"], inputs["target"]
        if args.quick:
            args.steps, args.warmup = min(args.steps, 20), 2
            args.batch_size = args.batch_size or "8"
        results = {}
        for strategy in ("finetune", "mft"):
            cmd = [sys.executable, __file__, "--child", strategy, "--data", args.data, "--split",
                   args.split, "--target", args.target, "--pretrained", args.pretrained,
                   "--ff-data", args.ff_data, "--steps",
                   str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--device", args.device]  # fmt: skip
            for flag, value in (("--batch-size", args.batch_size),
                                ("--ff-batch-size", args.ff_batch_size)):  # fmt: skip
                if value is not None:
                    cmd += [flag, value]
            if args.data_root:
                cmd += ["--data-root", args.data_root]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"{strategy} benchmark failed")
            results[strategy] = json.loads(out.stdout.strip().splitlines()[-1])
    ft, mft = results["finetune"], results["mft"]
    batches = f"batch {args.batch_size or 'auto:512'}, ff batch {args.ff_batch_size or 'auto:128'}"
    print(f"{batches}, {args.steps} timed steps after {args.warmup} warm-up")
    for r in (ft, mft):
        parts = ", ".join(
            f"{k} {v:.1f} ms x{r['by_task_n'][k]}" for k, v in r["by_task_ms"].items()
        )
        print(f"{r['strategy']:<9} step {r['step_ms']:8.1f} ms ({parts}); peak RSS "
              f"{r['peak_rss_mib']:.0f} MiB (before steps {r['rss_before_steps_mib']:.0f} MiB)")  # fmt: skip
    print(f"ratio mft/finetune: step time {mft['step_ms'] / ft['step_ms']:.2f}, "
          f"peak memory {mft['peak_rss_mib'] / ft['peak_rss_mib']:.2f}")  # fmt: skip
    what = f"{batches}, {data_desc}"
    perf("mft_step", f"mft optimiser step ({what})", mft["step_ms"], "ms", "lower",
         "finetune step", ft["step_ms"])  # fmt: skip
    perf("mft_step", f"mft peak RSS ({what})", mft["peak_rss_mib"], "MiB", "lower",
         "finetune peak RSS", ft["peak_rss_mib"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main_())
