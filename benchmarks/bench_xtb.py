"""xTB labelling benchmark: conformers per second, one worker against all cores.

    python benchmarks/bench_xtb.py --data-root data            # 200 QM9 molecules x 4 conformers
    python benchmarks/bench_xtb.py --data-root data --quick    # 24 molecules x 2 conformers
    python benchmarks/bench_xtb.py --method rattle --method rdkit --workers 1 4 16

Molecules are drawn (seeded) from ``<data-root>/stores/qm9`` when it exists, else from ASE's
G2 set of small organic molecules (a stand-in, said so in the output). Each run is a complete
``run_label_job`` (conformer generation, GFN2-xTB, chunk writes, the final store) into a
temporary data root, so the rate includes the worker pool's start-up and all I/O. Every run must
produce the same store bit for bit, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _perf import perf


def _g2_store(root: Path) -> str:
    from ase.build import molecule
    from ase.collections import g2

    from atomcollapse.data.schema import pack
    from atomcollapse.data.store import write_store

    names = [n for n in g2.names if 6 <= len(g2[n]) <= 20 and set(g2[n].numbers) <= {1, 6, 7, 8}]
    atoms = [molecule(n) for n in names]
    s = pack([a.numbers for a in atoms], [a.positions for a in atoms], ids=names)
    write_store(s, root / "stores" / "g2", name="g2", kind="molecules", source={"format": "ase-g2"})
    return "g2"


def main(argv: list[str] | None = None) -> int:
    from atomcollapse.data.store import open_store
    from atomcollapse.forcefield import LabelJob, SamplingConfig, level_of_theory, run_label_job
    from atomcollapse.forcefield.job import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--quick", action="store_true", help="24 molecules x 2 conformers")
    parser.add_argument("--n-molecules", type=int, default=None)
    parser.add_argument("--per-molecule", type=int, default=None)
    parser.add_argument("--method", action="append", default=None, help="default: rattle")
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1 and all")
    args = parser.parse_args(argv)

    n_mol = args.n_molecules or (24 if args.quick else 200)
    per = args.per_molecule or (2 if args.quick else 4)
    cores = default_workers()
    workers = args.workers or sorted({1, cores})
    methods = tuple(args.method or ["rattle"])

    tmp = Path(tempfile.mkdtemp(prefix="bench-xtb-"))
    try:
        qm9 = args.data_root / "stores" / "qm9"
        if (qm9 / "manifest.json").is_file():
            source, label, short = str(qm9.resolve()), "QM9", "QM9"
        else:
            source, label = _g2_store(tmp), "ASE G2 stand-in (no QM9 store found)"
            short = "ASE G2 stand-in"
        n_avail = len(open_store(source, tmp))
        n_mol = min(n_mol, n_avail)
        print(
            f"{level_of_theory()}; {label}: {n_mol} molecules x {per} conformers "
            f"({', '.join(methods)}); {cores} core(s), os.cpu_count()={os.cpu_count()}"
        )
        sampling = SamplingConfig(methods=methods, per_molecule=per, seed=0)
        hashes, rates = set(), {}
        print(
            f"{'workers':>7} {'structures':>10} {'failed':>6} {'wall s':>8} {'conf/s':>8} "
            f"{'conf/min':>9} {'ms/conf/worker':>14}"
        )
        for w in workers:
            job = LabelJob(name=f"bench-w{w}", store=source, n_molecules=n_mol, sampling=sampling)
            t0 = time.perf_counter()
            out = run_label_job(job, root=tmp, workers=w)
            wall = time.perf_counter() - t0
            hashes.add(open_store(f"bench-w{w}", tmp).content_hash)
            rate = rates[w] = out.n_tasks / wall
            print(
                f"{w:>7} {out.n_labelled:>10} {out.n_failed:>6} {wall:>8.2f} {rate:>8.1f} "
                f"{60 * rate:>9.0f} {1000 * w / rate:>14.1f}"
            )
        atoms = np.diff(np.asarray(open_store(f"bench-w{workers[0]}", tmp).offsets)).mean()
        print(
            f"mean atoms per conformer: {atoms:.1f}; identical stores across worker counts: "
            f"{'yes' if len(hashes) == 1 else 'NO'}"
        )
        what = f"{short}, {n_mol} x {per} conformers"
        for w in workers:
            if w == 1:
                continue
            perf("xtb", f"GFN2-xTB labelling, {w} workers ({what})", rates[w], "conformers/s",
                 "higher", "1 worker", rates.get(1))  # fmt: skip
        if workers == [1]:
            perf("xtb", f"GFN2-xTB labelling, 1 worker ({what})", rates[1], "conformers/s",
                 "higher", note="one core only: no multi-worker comparison")  # fmt: skip
        return 0 if len(hashes) == 1 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
