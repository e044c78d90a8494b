"""Collapse-measure benchmark on CPU: how long ``atomcollapse collapse`` takes for N atoms.

    python benchmarks/bench_collapse.py --quick            # 2,000 synthetic atoms, with t-SNE
    python benchmarks/bench_collapse.py                    # 20,000 synthetic atoms, no t-SNE
    python benchmarks/bench_collapse.py --tsne --models 3 --against-sklearn
        # 20,000 synthetic atoms x 3 models with t-SNE, then again with scikit-learn's t-SNE
    python benchmarks/bench_collapse.py --pretrained CKPT RUN_DIR... [--data STORE] --tsne \
        --against-sklearn                                  # real path, end to end, both t-SNEs
    python benchmarks/bench_collapse.py --tsne-sweep 1000,2000,5000,10000   # backend threshold

Synthetic: 10 classes of ``N / 10`` atoms, 128-wide embeddings, a pretrained model and up to
three adapted ones (noisier, classes pulled together, rotated); every measure of ``collapse`` is
timed per model. The real path times sampling (10 atom + 6 pair classes of up to N/10 each),
embedding extraction per checkpoint and the measures, as the command runs them. ``--threads``
caps the CPU threads (t-SNE and torch). ``--tsne-backend`` picks the t-SNE (default ``auto``:
openTSNE's FFT method from ``OPENTSNE_MIN`` points, scikit-learn's Barnes-Hut below);
``--against-sklearn`` repeats the whole measurement with scikit-learn's t-SNE in the same run
and prints the ratio and the Davies-Bouldin index on the t-SNE of both. ``--tsne-sweep`` times
both backends alone on the synthetic pretrained embeddings at each size: where the ratio falls
below 1 is the threshold.
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
        "collapsed": 0.3 * centers[labels] + noise,
        "noisier": pre + 2.0 * rng.normal(size=pre.shape),
        "rotated": pre @ q,
    }
    return models, labels


def bench_synthetic(
    args, timer: Timer, backend: str, reference: Timer | None = None
) -> tuple[dict, dict[str, float], dict[str, float]]:
    """Every measure per model; with ``reference``, each model's t-SNE is also run with
    scikit-learn right after ours (timed into ``reference``), so partial output compares."""
    from atomcollapse.analysis import measures as ms

    models, labels = synthetic(args.atoms, args.dim, args.seed)
    models = dict(list(models.items())[: args.models])
    ref = models["pretrained"]
    db: dict[str, float] = {}
    db_ref: dict[str, float] = {}
    for name, x in models.items():
        timer("davies_bouldin_raw", ms.davies_bouldin, x, labels)
        timer("wasserstein_per_dim", ms.wasserstein_per_dim, ref, x)
        timer("wasserstein_sliced", ms.sliced_wasserstein, ref, x, n_projections=args.projections)
        timer("linear_cka", ms.linear_cka, ref, x)
        line = f"  {name}: done"
        if args.tsne:
            before = timer.times.get("tsne", 0.0)
            xy = timer("tsne", ms.tsne_2d, x, seed=args.seed, max_iter=args.tsne_max_iter,
                       threads=args.threads, backend=backend)  # fmt: skip
            db[name] = timer("davies_bouldin_tsne", ms.davies_bouldin, xy, labels)
            line += f"; t-SNE {timer.times['tsne'] - before:.1f} s, DB {db[name]:.3f}"
        if args.tsne and reference is not None:
            before = reference.times.get("tsne", 0.0)
            xy = reference("tsne", ms.tsne_2d, x, seed=args.seed, max_iter=args.tsne_max_iter,
                           threads=args.threads, backend="sklearn")  # fmt: skip
            db_ref[name] = ms.davies_bouldin(xy, labels)
            line += (f"; scikit-learn {reference.times['tsne'] - before:.1f} s, "
                     f"DB {db_ref[name]:.3f}")  # fmt: skip
        print(line, flush=True)
    return {"atoms": len(labels), "dim": args.dim, "models": len(models)}, db, db_ref


def bench_real(args, timer: Timer, backend: str) -> tuple[dict, dict[str, float]]:
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
    result = timer("measures", compare_models, emb, labels, reference="pretrained",
                   seed=args.seed, tsne=args.tsne, tsne_max_iter=args.tsne_max_iter,
                   n_projections=args.projections, threads=args.threads,
                   tsne_backend=backend)  # fmt: skip
    db = {f"{r['model']} {r['set']}": r["db_tsne"] for r in result.rows}
    n_struct = len(sample.structures)
    return {"atoms": len(sample.atom_label), "pairs": len(sample.edge_label),
            "structures": n_struct, "models": len(emb), "edge_mode": mode}, db  # fmt: skip


def measure(args, backend: str, reference: Timer | None = None):
    """One full measurement with the given t-SNE backend: info, per-step timer, total seconds,
    Davies-Bouldin on the t-SNE per model (and set), and (synthetic path, with ``reference``)
    scikit-learn's DB per model, its t-SNE timed into ``reference``."""
    from threadpoolctl import threadpool_limits

    timer = Timer()
    db_ref: dict[str, float] = {}
    t0 = time.perf_counter()
    with threadpool_limits(args.threads):
        if args.pretrained is not None:
            info, db = bench_real(args, timer, backend)
            info = {"path": "real", **info}
        else:
            info, db, db_ref = bench_synthetic(args, timer, backend, reference)
            info = {"path": "synthetic", **info}
    total = time.perf_counter() - t0 - (reference.times.get("tsne", 0.0) if reference else 0.0)
    return info, timer, total, db, db_ref


def sweep(args) -> int:
    """Both t-SNE backends alone on the synthetic pretrained embeddings, at each size."""
    from atomcollapse.analysis import measures as ms

    print(f"t-SNE, {args.tsne_max_iter} iterations, threads {args.threads or 'default'}; "
          f"OPENTSNE_MIN = {ms.OPENTSNE_MIN:,}")  # fmt: skip
    print(f"{'points':>8} {'openTSNE s':>11} {'sklearn s':>10} {'ratio':>6}  DB openTSNE / sklearn")
    for n in args.tsne_sweep:
        models, labels = synthetic(n, args.dim, args.seed)
        x = models["pretrained"]
        t, db = {}, {}
        for backend in ("opentsne", "sklearn"):
            t0 = time.perf_counter()
            xy = ms.tsne_2d(x, seed=args.seed, max_iter=args.tsne_max_iter, threads=args.threads,
                            backend=backend)  # fmt: skip
            t[backend] = time.perf_counter() - t0
            db[backend] = ms.davies_bouldin(xy, labels)
        print(f"{n:>8,} {t['opentsne']:>11.2f} {t['sklearn']:>10.2f} "
              f"{t['opentsne'] / t['sklearn']:>6.2f}  {db['opentsne']:.3f} / {db['sklearn']:.3f}",
              flush=True)  # fmt: skip
        perf("collapse", f"t-SNE alone, {n:,} synthetic points (openTSNE FFT)", t["opentsne"], "s",
             "lower", "scikit-learn Barnes-Hut t-SNE", t["sklearn"])  # fmt: skip
    return 0


def _report(args, info: dict, timer: Timer, total: float, label: str) -> None:
    print(json.dumps({**info, "tsne_backend": label}))
    for name, sec in timer.times.items():
        print(f"{name:24s}: {sec:9.2f} s")
    print(f"{'total':24s}: {total:9.2f} s", flush=True)


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
    p.add_argument("--models", type=int, default=4, help="synthetic models, pretrained first")
    p.add_argument("--tsne-backend", choices=("auto", "sklearn", "opentsne"), default="auto")
    p.add_argument(
        "--against-sklearn",
        action="store_true",
        help="repeat with scikit-learn's t-SNE in the same run",
    )
    p.add_argument(
        "--tsne-sweep",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        help="comma-separated sizes: time both t-SNE backends alone at each",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    args = p.parse_args(argv)
    if args.quick:
        args.atoms, args.tsne, args.tsne_max_iter = 2_000, True, 250
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import openTSNE
    import sklearn.manifold
    import sklearn.metrics

    del sklearn, openTSNE  # imported above so that import time is not counted as measure time
    if args.tsne_sweep:
        return sweep(args)

    synthetic_ref = Timer() if args.against_sklearn and args.pretrained is None else None
    info, timer, total, db, ref_db = measure(args, args.tsne_backend, synthetic_ref)
    from atomcollapse.analysis.measures import tsne_backend

    used = tsne_backend(info["atoms"], args.tsne_backend) if args.tsne else "none"
    _report(args, info, timer, total, used)
    info |= {"tsne": args.tsne, "tsne_max_iter": args.tsne_max_iter, "threads": args.threads}
    what = f"{info['path']}, {info['atoms']:,} atoms, {info['models']} models"
    tsne = f"t-SNE {args.tsne_max_iter} it" if args.tsne else "no t-SNE"
    ref: dict = {}
    if synthetic_ref is not None and args.tsne:
        # the other measures are the same code in both: scikit-learn's total is theirs + its t-SNE
        ref_tsne = synthetic_ref.times["tsne"]
        ref = {"total": total - timer.times["tsne"] + ref_tsne, "tsne": ref_tsne, "db": ref_db}
    elif args.against_sklearn and args.tsne:
        print("\nagain with scikit-learn's Barnes-Hut t-SNE:", flush=True)
        _, ref_timer, ref_total, ref_db, _ = measure(args, "sklearn")
        _report(args, info, ref_timer, ref_total, "sklearn")
        ref = {"total": ref_total, "tsne": ref_timer.times.get("measures"), "db": ref_db}
    if ref:
        print(f"\nDavies-Bouldin on the t-SNE ({used} / sklearn):")
        for k in db:
            print(f"  {k:24s} {db[k]:.3f} / {ref['db'][k]:.3f}")
    sk = "scikit-learn Barnes-Hut t-SNE, same run"
    perf("collapse", f"collapse measures, total ({what}, {tsne}, {used})", total, "s", "lower",
         sk if ref else None, ref.get("total"))  # fmt: skip
    if "tsne" in timer.times:
        perf("collapse", f"t-SNE ({what}, {used})", timer.times["tsne"], "s", "lower",
             sk if ref else None, ref.get("tsne"))  # fmt: skip
    if args.json:
        out = {**info, "tsne_backend": used, "seconds": timer.times, "total_s": total,
               "db_tsne": db, "sklearn": ref}  # fmt: skip
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
