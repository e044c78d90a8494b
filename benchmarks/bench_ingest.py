"""QM9 ingest benchmark: wall time and peak memory of a full ingest, then store open + iteration.

    python benchmarks/bench_ingest.py --data-root data            # full QM9 from qm9pack
    python benchmarks/bench_ingest.py --data-root data --quick    # qm9_part1.csv only (43,610)

The store is written under ``<data-root>/bench/`` and removed afterwards (``--keep`` keeps it),
so the real ``stores/qm9`` is never touched. Peak memory is the process's maximum resident set
size (``ru_maxrss``), which includes the Python interpreter and imported libraries.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from _perf import perf


def _peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20  # KiB on Linux, B on macOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--source", type=Path, default=None, help="QM9 source (default: qm9pack)")
    parser.add_argument("--quick", action="store_true", help="ingest qm9pack's first CSV only")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark store")
    args = parser.parse_args(argv)

    from atomcollapse.data.sources.qm9 import load_qm9
    from atomcollapse.data.sources.qm9_csv import qm9pack_dir
    from atomcollapse.data.store import open_store, write_store

    source = args.source
    if args.quick and source is None:
        folder = qm9pack_dir()
        if folder is None:
            parser.error("--quick needs qm9pack installed (or pass --source)")
        source = folder / "qm9_part1.csv"
    target = args.data_root / "bench" / "qm9-bench"
    rss0 = _peak_rss_mib()

    t0 = time.perf_counter()
    ing = load_qm9(source)
    t_read = time.perf_counter() - t0
    write_store(ing.structures, target, name="qm9-bench", kind=ing.kind, source=ing.source,
                target_info=ing.target_info, extra=ing.extra, overwrite=True)  # fmt: skip
    t_ingest = time.perf_counter() - t0
    rss_ingest = _peak_rss_mib()
    n, n_atoms = len(ing.structures), ing.structures.n_atoms
    del ing

    t0 = time.perf_counter()
    store = open_store(target)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    count, atoms, checksum = 0, 0, 0.0
    for view in store:
        count += 1
        atoms += len(view.numbers)
        checksum += float(view.positions[0, 0])
    t_iter = time.perf_counter() - t0
    t0 = time.perf_counter()
    gap = np.asarray(store.target("gap"))
    t_target = time.perf_counter() - t0
    assert count == n and atoms == n_atoms and gap.shape == (n,)

    fmt = store.manifest["source"]["format"]
    print(f"source            : {fmt} ({n:,} molecules, {n_atoms:,} atoms)")
    print(f"read              : {t_read:8.2f} s")
    print(f"read + write      : {t_ingest:8.2f} s")
    print(f"peak RSS          : {rss_ingest:8.0f} MiB (at start {rss0:.0f} MiB)")
    print(f"open store        : {t_open * 1e3:8.2f} ms")
    print(f"iterate molecules : {t_iter:8.2f} s  ({n / t_iter:,.0f} molecules/s)")
    print(f"load one target   : {t_target * 1e3:8.2f} ms")
    what = f"QM9 {fmt}, {n:,} molecules"
    perf("ingest", f"read + write store ({what})", t_ingest, "s", "lower")
    perf("ingest", "peak RSS during ingest", rss_ingest, "MiB", "lower")
    perf("ingest", "open store", t_open * 1e3, "ms", "lower")
    perf("ingest", "iterate molecules", n / t_iter, "molecules/s", "higher")
    perf("ingest", "load one target column", t_target * 1e3, "ms", "lower")
    if not args.keep:
        shutil.rmtree(target, ignore_errors=True)
        with contextlib.suppress(OSError):
            target.parent.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
