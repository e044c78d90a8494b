"""Split benchmark: all 8 QM9 property-tail splits, the QM9 scaffold split, and the fast KDE's
ranking against scikit-learn's exact KernelDensity.

    python benchmarks/bench_splits.py --data-root data            # needs stores/qm9
    python benchmarks/bench_splits.py --data-root data --quick    # no scaffold split, smaller check
    python benchmarks/bench_splits.py --data-root data --scaffold-only

Nothing is written. Times are wall-clock seconds of one run (the first property-tail split also
pays for finding duplicate molecules, once per store). The ranking check fits sklearn on a random
subsample of each target (raw units) and compares the sets of lowest-density values; any
difference must be values tied with the cutoff.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _perf import perf

SKLEARN = "sklearn KernelDensity (exact)"


def _kde_check(values: np.ndarray, n_sample: int, seed: int = 0) -> tuple[int, int, float, float]:
    """(set differences, of which ties, seconds ours, seconds sklearn) on a subsample."""
    from sklearn.neighbors import KernelDensity

    from atomcollapse.splits.kde import bandwidth, lowest_density

    rng = np.random.default_rng(seed)
    x = rng.choice(values, size=min(n_sample, len(values)), replace=False)
    n_low = max(1, len(x) * 10_000 // 130_831)
    t0 = time.perf_counter()
    ours = lowest_density(x, n_low, bandwidth(x))
    t1 = time.perf_counter()
    ref = (
        KernelDensity(kernel="gaussian", bandwidth="scott")
        .fit(x[:, None])
        .score_samples(x[:, None])
    )
    t2 = time.perf_counter()
    ref_set = set(np.argsort(ref, kind="stable")[:n_low].tolist())
    differ = ref_set ^ set(ours.indices.tolist())
    cut = ref[np.argsort(ref, kind="stable")[n_low - 1]]
    ties = sum(1 for i in differ if np.isclose(ref[i], cut, rtol=0, atol=1e-9))
    return len(differ), ties, t1 - t0, t2 - t1


def _scaffold_bench(store, what: str, rounds: int = 2) -> None:
    """The scaffold split as shipped against the same split with its scaffolds computed in one
    process (the code before worker processes), best of ``rounds`` each, alternating; the
    duplicate search is done once beforehand, as the property-tail splits would have."""
    from atomcollapse.parallel import usable_cpus
    from atomcollapse.splits import SplitConfig, make_split, scaffold
    from atomcollapse.splits.identity import identity

    identity(store)
    cfg = SplitConfig(method="scaffold", n_ood=10_000)
    shipped = scaffold.PARALLEL_MIN
    best = {"ours": np.inf, "one process": np.inf}
    codes = {}
    for _ in range(rounds):
        for name, threshold in (("one process", 10**12), ("ours", shipped)):
            scaffold._MEMO.clear()
            scaffold.PARALLEL_MIN = threshold
            t0 = time.perf_counter()
            split = make_split(store, cfg)
            best[name] = min(best[name], time.perf_counter() - t0)
            codes[name] = split.codes
    scaffold.PARALLEL_MIN = shipped
    if not np.array_equal(codes["ours"], codes["one process"]):
        raise SystemExit("scaffold split differs between one process and worker processes")
    g = split.manifest["groups"]
    counts = "/".join(f"{v:,}" for v in list(split.counts().values())[:4])
    print(f"{'scaffold largest-first':<22} {best['ours']:>8.2f}  {counts}  {g['n_total']:,} "
          f"scaffolds; one process {best['one process']:.2f}s; "
          f"{usable_cpus()} usable core(s); same partitions")  # fmt: skip
    perf("splits", f"scaffold split ({what})", best["ours"], "s", "lower",
         "same split, scaffolds in one process", best["one process"])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--store", default="qm9")
    parser.add_argument("--quick", action="store_true", help="skip the scaffold split")
    parser.add_argument("--scaffold-only", action="store_true", help="only the scaffold split")
    parser.add_argument("--rounds", type=int, default=2, help="scaffold timings: best of N")
    parser.add_argument("--sample", type=int, default=None, help="values per sklearn check")
    args = parser.parse_args(argv)
    n_sample = args.sample or (2_000 if args.quick else 5_000)

    from atomcollapse.constants import QM9_BENCHMARK_TARGETS
    from atomcollapse.data.store import store_path
    from atomcollapse.splits import SplitConfig, make_split

    path = store_path(args.store, args.data_root)
    if not (path / "manifest.json").is_file():
        print(f"no store at {path}: run `atomcollapse ingest qm9` first; checking the KDE only")
        rng = np.random.default_rng(0)
        x = np.round(np.concatenate([rng.normal(0, 1, 80_000), rng.normal(3, 0.4, 50_000)]), 3)
        d, ties, t_ours, t_ref = _kde_check(x, n_sample)
        print(f"synthetic: {d} differences ({ties} ties); ours {t_ours:.3f}s, sklearn {t_ref:.2f}s")
        what = f"synthetic, {n_sample:,} values"
        perf("splits", f"KDE lowest-density ranking ({what})", t_ours, "s", "lower", SKLEARN, t_ref)
        perf("splits", f"KDE ranking differences beyond ties ({what})", d - ties, "values", "lower")
        return 0

    from atomcollapse.data.store import Store

    store = Store(path)
    print(f"{store.name}: {len(store):,} structures, content hash {store.content_hash[:12]}")
    print(f"{'split':<22} {'seconds':>8}  counts (train/val/id_test/ood_test)  kde")
    total = 0.0
    for t in () if args.scaffold_only else QM9_BENCHMARK_TARGETS:
        t0 = time.perf_counter()
        split = make_split(store, SplitConfig(method="property-tail", target=t))
        dt = time.perf_counter() - t0
        total += dt
        c = split.counts()
        kde = split.manifest["details"]["kde"]
        counts = f"{c['train']:,}/{c['val']:,}/{c['id_test']:,}/{c['ood_test']:,}"
        how = f"{kde['method']} ({kde['values_rechecked_exactly']} rechecked)"
        print(f"property-tail {t:<8} {dt:>8.2f}  {counts}  {how}")
    n_targets = len(QM9_BENCHMARK_TARGETS)
    what = f"{len(store):,} molecules"
    if not args.scaffold_only:
        print(f"{'all 8 property-tail':<22} {total:>8.2f}")
        perf("splits", f"{n_targets} property-tail splits ({what})", total, "s", "lower")
    if not args.quick:
        _scaffold_bench(store, what, args.rounds)
    if args.scaffold_only:
        return 0
    print(f"\nKDE ranking vs sklearn KernelDensity (exact), {n_sample:,} random values per target:")
    sums = np.zeros(3)
    for t in QM9_BENCHMARK_TARGETS:
        d, ties, t_ours, t_ref = _kde_check(np.asarray(store.target(t)), n_sample)
        sums += (d - ties, t_ours, t_ref)
        verdict = "identical" if d == 0 else f"{d} differ, {ties} of them ties at the cutoff"
        print(f"  {t:<6} {verdict:<40} ours {t_ours:.3f}s, sklearn {t_ref:.2f}s")
    what = f"{n_targets} targets x {n_sample:,} values"
    perf("splits", f"KDE lowest-density ranking ({what})", sums[1], "s", "lower", SKLEARN, sums[2])
    perf("splits", f"KDE ranking differences beyond ties ({what})", sums[0], "values", "lower")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
