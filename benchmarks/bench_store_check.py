"""Cost of the store integrity checks on a real store (read only: nothing is written there).

    python benchmarks/bench_store_check.py data/stores/qm9

Times, in seconds: opening (manifest + every array's header, shape and size: done on every
open), the full re-hash of every array (``datasets verify``, ``split verify``; the first pass
reads from disk unless the files are in the page cache, later ones from memory), and the cached
check ``train``/``split make``/``pretrain`` do (file fingerprint, no hashing). The verified-store
cache goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", help="store folder (e.g. data/stores/qm9)")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ATOMCOLLAPSE_CACHE"] = cache
        from atomcollapse.data.store import open_store

        def timed(fn) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        opens = [timed(lambda: open_store(a.store)) for _ in range(a.repeat)]
        s = open_store(a.store)
        hashes = [timed(lambda: s.verify_content(cached=False)) for _ in range(a.repeat)]
        cached = [timed(lambda: open_store(a.store).verify_content()) for _ in range(a.repeat)]
    n_bytes = sum(f.stat().st_size for f in s.path.glob("*.npy"))
    print(f"store {s.name}: {len(s):,} structures, {n_bytes / 1e6:.0f} MB of arrays")
    print(f"open (headers, shapes, sizes): median {statistics.median(opens) * 1e3:.2f} ms")
    print(f"full re-hash: first {hashes[0]:.3f} s, median {statistics.median(hashes):.3f} s")
    print(f"cached check (open + fingerprint): median {statistics.median(cached) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
