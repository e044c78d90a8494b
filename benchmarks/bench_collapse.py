"""Collapse-measure benchmark on CPU: how long ``atomcollapse collapse`` takes for N atoms.

    python benchmarks/bench_collapse.py --quick            # 2,000 synthetic atoms, with t-SNE
    python benchmarks/bench_collapse.py                    # 20,000 synthetic atoms, no t-SNE
    python benchmarks/bench_collapse.py --tsne             # 20,000 with t-SNE (minutes per model)
    python benchmarks/bench_collapse.py --pretrained CKPT RUN_DIR... [--data STORE]   # real path

Synthetic: 10 classes of ``N / 10`` atoms, 128-wide embeddings, a pretrained model and three
adapted ones (noisier, classes pulled together, rotated); every measure of ``collapse`` is timed
per model. The real path times sampling (10 atom + 6 pair classes of up to N/10 each), embedding
extraction per checkpoint and the measures, as the command runs them. ``--threads`` caps the
CPU threads (t-SNE and torch); t-SNE uses Barnes–Hut with ``--tsne-max-iter`` iterations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _perf import perf


class Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out


def synthetic(n_atoms: int, dim: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_atoms // 10)
    centers = rng.normal(size=(10, dim)) * 3.0
    noise = rng.normal(size=(len(labels), dim))
    pre = centers[labels] + noise
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    models = {
        "pretrained": pre,
        "noisier": pre + 2.0 * rng.normal(size=pre.shape),
        "collapsed": 0.3 * centers[labels] + noise,
        "rotated": pre @ q,
    }
    return models, labels


def bench_synthetic(args, timer: Timer) -> dict:
    from atomcollapse.analysis import measures as ms

    models, labels = synthetic(args.atoms, args.dim, args.seed)
    ref = models["pretrained"]
    for name, x in models.items():
        timer("davies_bouldin_raw", ms.davies_bouldin, x, labels)
        timer("wasserstein_per_dim", ms.wasserstein_per_dim, ref, x)
        timer("wasserstein_sliced", ms.sliced_wasserstein, ref, x, n_projections=args.projections)
        timer("linear_cka", ms.linear_cka, ref, x)
        if args.tsne:
            xy = timer("tsne", ms.tsne_2d, x, seed=args.seed, max_iter=args.tsne_max_iter,
                       threads=args.threads)  # fmt: skip
            timer("davies_bouldin_tsne", ms.davies_bouldin, xy, labels)
        print(f"  {name}: done", flush=True)
    return {"atoms": len(labels), "dim": args.dim, "models": len(models)}


def bench_real(args, timer: Timer) -> dict:
    from atomcollapse.analysis.collapse import compare_models, sample_environments
    from atomcollapse.analysis.embeddings import extract, load_backbone
    from atomcollapse.analysis.pipeline import resolve_inputs

    inputs = timer("resolve_inputs", resolve_inputs, args.pretrained, args.runs,
                   data=args.data, split=args.split, partition=args.partition,
                   data_root=args.data_root)  # fmt: skip
    per_class = max(1, args.atoms // 10)
    sample = timer("sample_environments", sample_environments, inputs.store, inputs.rows,
                   max_per_class=per_class, seed=args.seed)  # fmt: skip
    emb, mode = {}, "auto"
    for name, path in inputs.models.items():
        backbone = timer("load_checkpoint", load_backbone, path)
        e = timer("extract_embeddings", extract, backbone, inputs.store, sample, edge_mode=mode)
        mode = e.edge_mode
        emb[name] = {"atoms": e.atoms, "edges": e.edges}
    labels = {"atoms": sample.atom_label, "edges": sample.edge_label}
    timer("measures", compare_models, emb, labels, reference="pretrained", seed=args.seed,
          tsne=args.tsne, tsne_max_iter=args.tsne_max_iter, n_projections=args.projections,
          threads=args.threads)  # fmt: skip
    n_struct = len(sample.structures)
    return {"atoms": len(sample.atom_label), "pairs": len(sample.edge_label),
            "structures": n_struct, "models": len(emb), "edge_mode": mode}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", type=Path, help="run directories (real path)")
    p.add_argument("--pretrained", type=Path, help="pretrained checkpoint (real path)")
    p.add_argument("--data", help="store name or path [default: the runs']")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--split", type=Path, default=None)
    p.add_argument("--partition", default="ood_test")
    p.add_argument("--atoms", type=int, default=20_000, help="atoms in all (10 classes)")
    p.add_argument("--dim", type=int, default=128, help="synthetic embedding width")
    p.add_argument("--quick", action="store_true", help="2,000 atoms, t-SNE on, 250 iterations")
    p.add_argument("--tsne", action="store_true", help="include t-SNE (slow at 20,000 atoms)")
    p.add_argument("--tsne-max-iter", type=int, default=1000)
    p.add_argument("--projections", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    args = p.parse_args(argv)
    if args.quick:
        args.atoms, args.tsne, args.tsne_max_iter = 2_000, True, 250
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import sklearn.manifold
    import sklearn.metrics
    from threadpoolctl import threadpool_limits

    del sklearn  # imported above so that import time is not counted as measure time

    timer = Timer()
    t0 = time.perf_counter()
    with threadpool_limits(args.threads):
        if args.pretrained is not None:
            info = {"path": "real", **bench_real(args, timer)}
        else:
            info = {"path": "synthetic", **bench_synthetic(args, timer)}
    total = time.perf_counter() - t0
    info |= {"tsne": args.tsne, "tsne_max_iter": args.tsne_max_iter, "threads": args.threads}
    print(json.dumps(info))
    for name, sec in timer.times.items():
        print(f"{name:24s}: {sec:9.2f} s")
    print(f"{'total':24s}: {total:9.2f} s")
    what = f"{info['path']}, {info['atoms']:,} atoms, {info['models']} models"
    tsne = f"t-SNE {args.tsne_max_iter} it" if args.tsne else "no t-SNE"
    perf("collapse", f"collapse measures, total ({what}, {tsne})", total, "s", "lower")
    if "tsne" in timer.times:
        perf("collapse", f"t-SNE ({what})", timer.times["tsne"], "s", "lower")
    if args.json:
        args.json.write_text(
            json.dumps({**info, "seconds": timer.times, "total_s": total}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
