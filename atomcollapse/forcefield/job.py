"""The labelling job: choose molecules, draw and label conformers in chunks, build the store.

Work lives in ``<data_root>/work/<name>/``: ``state.json`` (the settings and their hash),
``chunk-XXXXX.npz`` (each written atomically once all its tasks are done) and
``failures.jsonl`` (every structure that could not be drawn or labelled). Running the same job
again skips finished chunks, so a killed run resumes where it stopped; the chunks depend only on
the settings, never on the number of workers. When every chunk exists they are combined into a
force-field store at ``<data_root>/stores/<name>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomcollapse.artifacts import check_replaceable, header, write_json_atomic
from atomcollapse.data.store import Store, data_root, new_store_path, open_store, write_store
from atomcollapse.errors import InputError
from atomcollapse.forcefield import xtb
from atomcollapse.forcefield.chunks import (
    FAILURES,
    chunk_path,
    combine_chunks,
    read_chunk,
    write_chunk,
    write_failures,
)
from atomcollapse.forcefield.sampling import SamplingConfig
from atomcollapse.forcefield.selection import (
    SMILES_COLUMNS,
    choose_molecules,
    excluded_rows,
    text_column,
)
from atomcollapse.parallel import usable_cpus
from atomcollapse.process import fault

STATE = "state.json"
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LabelJob:
    """Everything that decides the output (the number of workers does not)."""

    name: str
    store: str = "qm9"
    n_molecules: int | None = None
    fraction: float | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    exclude_splits: tuple[str, ...] = ()
    chunk_size: int = 500

    def __post_init__(self) -> None:
        if not self.name or Path(self.name).name != self.name or self.name.startswith("."):
            raise InputError(f"--name must be a plain name, got {self.name!r}")
        if self.chunk_size < 1:
            raise InputError("--chunk-size must be at least 1")


@dataclass(frozen=True)
class LabelOutcome:
    """What a run did; ``store_path`` is None when it stopped before the last chunk."""

    work_dir: Path
    store_path: Path | None
    n_tasks: int
    n_chunks: int
    n_chunks_done: int
    n_labelled: int
    n_failed: int


def work_dir(name: str, root: str | Path | None = None) -> Path:
    return data_root(root) / "work" / name


def default_workers() -> int:
    return usable_cpus()


def _plan(job: LabelJob, store: Store, root: str | Path | None) -> tuple[dict, np.ndarray]:
    if store.kind != "molecules" or np.asarray(store.pbc).any():
        raise InputError(
            "xTB labelling needs a molecule store (kind 'molecules', no periodic cell)",
            file=store.path,
        )
    mask, excluded = excluded_rows(store, job.exclude_splits, root)
    rows = choose_molecules(
        len(store), mask, seed=job.sampling.seed, n_molecules=job.n_molecules, fraction=job.fraction
    )
    config = {
        "level_of_theory": xtb.level_of_theory(),
        "source_store": {"name": store.name, "content_hash": store.content_hash},
        "selection": {
            "n_available": len(store),
            "n_excluded": int(mask.sum()),
            "n_molecules": int(rows.size),
            "requested_n_molecules": job.n_molecules,
            "requested_fraction": job.fraction,
            "rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
        },
        "sampling": job.sampling.as_dict(),
        "excluded_splits": [e.as_dict() for e in excluded],
        "n_tasks": int(rows.size) * job.sampling.per_molecule,
        "chunk_size": job.chunk_size,
    }
    return config, rows


def _config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _tasks(
    store: Store, rows: np.ndarray, per_molecule: int, start: int, stop: int
) -> Iterator[dict]:
    ids = store.ids
    smiles = text_column(store, SMILES_COLUMNS)
    for t in range(start, stop):
        row, k = int(rows[t // per_molecule]), t % per_molecule
        s = store.structure(row)
        yield {
            "parent_index": row,
            "parent_id": str(ids[row]),
            "k": k,
            "numbers": np.asarray(s.numbers, dtype=np.int64),
            "positions": np.asarray(s.positions, dtype=np.float64),
            "smiles": "" if smiles is None else str(smiles[row]),
        }


@contextlib.contextmanager
def _one_thread_env() -> Iterator[None]:
    old = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update(dict.fromkeys(_THREAD_ENV, "1"))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _results(tasks: Iterable[dict], sampling: SamplingConfig, workers: int) -> Iterator[dict]:
    """Results in task order. Every worker, in-process or spawned, runs one OpenMP thread."""
    if workers == 1:
        import tblite.interface  # noqa: F401  (load its OpenMP runtime before limiting it)
        from threadpoolctl import threadpool_limits

        xtb.init_worker(sampling)
        with threadpool_limits(1):
            yield from map(xtb.run_task, tasks)
        return
    batch = sampling.per_molecule if "normal-modes" in sampling.methods else 1
    with _one_thread_env():
        pool = mp.get_context("spawn").Pool(workers, xtb.init_worker, (sampling,))
    with pool:
        yield from pool.imap(xtb.run_task, tasks, chunksize=batch)


def _open_work(wd: Path, config: dict, resume: bool) -> None:
    """Check (or start) the work folder; remove the temporary files of a killed run."""
    for leftover in [*wd.glob(".*.tmp"), *wd.glob(".*.tmp-*")]:
        leftover.unlink(missing_ok=True)
    state_file = wd / STATE
    h = _config_hash(config)
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("config_hash") != h:
            raise InputError(
                "work folder holds a run with other settings; use another --name or "
                "delete the folder",
                file=wd,
            )
        return
    if resume:
        raise InputError("nothing to resume (no state.json)", file=wd)
    inputs = {"store": config["source_store"]}
    write_json_atomic(
        state_file,
        {**header("xtb-labelling-work", inputs=inputs), "config_hash": h, "config": config},
    )


def run_label_job(
    job: LabelJob,
    *,
    root: str | Path | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_chunks: int | None = None,
    on_progress: Progress | None = None,
) -> LabelOutcome:
    """Run (or resume) ``job``; stop after ``max_chunks`` new chunks when given. The store's
    lock is held throughout (one labelling job per store name)."""
    from atomcollapse.process import artifact_lock

    with artifact_lock(new_store_path(job.name, root), "label"):
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise InputError("--workers must be at least 1")
        store = open_store(job.store, root)
        target = new_store_path(job.name, root)
        check_replaceable(target, "dataset", overwrite=overwrite)
        config, rows = _plan(job, store, root)
        wd = work_dir(job.name, root)
        _open_work(wd, config, resume)

        n_tasks, cs, k = config["n_tasks"], job.chunk_size, job.sampling.per_molecule
        n_chunks = -(-n_tasks // cs)
        done = [c for c in range(n_chunks) if chunk_path(wd, c).is_file()]
        failures = [f for c in done for f in read_chunk(chunk_path(wd, c))["failures"]]
        finished = set(done)
        todo = [c for c in range(n_chunks) if c not in finished][:max_chunks]
        n_workers = min(workers, max(1, len(todo) * cs))
        n_done = sum(min(cs, n_tasks - c * cs) for c in done)
        if on_progress:
            on_progress(n_done, n_tasks)

        def stream() -> Iterator[dict]:
            for c in todo:
                yield from _tasks(store, rows, k, c * cs, min(n_tasks, (c + 1) * cs))

        results = _results(stream(), job.sampling, n_workers) if todo else iter(())
        buffer: list[dict] = []
        chunk_iter = iter(todo)
        current = next(chunk_iter, None)
        for r in results:
            buffer.append(r)
            n_done += 1
            fault("label-task-done")
            if on_progress:
                on_progress(n_done, n_tasks)
            if current is not None and len(buffer) == min(cs, n_tasks - current * cs):
                write_chunk(chunk_path(wd, current), buffer)
                failures += [
                    {k_: v for k_, v in b.items() if k_ != "ok"} for b in buffer if not b["ok"]
                ]
                write_failures(wd, failures)
                done.append(current)
                buffer, current = [], next(chunk_iter, None)

        n_failed = len(failures)
        if len(done) < n_chunks:
            return LabelOutcome(wd, None, n_tasks, n_chunks, len(done), n_done - n_failed, n_failed)
        write_failures(wd, failures)
        path, n_ok = _combine(job, store, wd, target, n_chunks, config, failures, overwrite)
        return LabelOutcome(wd, path, n_tasks, n_chunks, n_chunks, n_ok, n_failed)


def _combine(
    job: LabelJob,
    store: Store,
    wd: Path,
    target: Path,
    n_chunks: int,
    config: dict,
    failures: list[dict],
    overwrite: bool,
) -> tuple[Path, int]:
    chunks = [read_chunk(chunk_path(wd, c)) for c in range(n_chunks)]
    if sum(c["parent_index"].size for c in chunks) == 0:
        raise InputError(
            f"no structure could be labelled ({len(failures)} failures)", file=wd / FAILURES
        )
    smiles = text_column(store, SMILES_COLUMNS)
    s = combine_chunks(chunks, np.asarray(store.ids).astype(str), smiles)
    by_stage: dict[str, int] = {}
    for f in failures:
        by_stage[f["stage"]] = by_stage.get(f["stage"], 0) + 1
    extra = {
        **config,
        "seed": job.sampling.seed,
        "xtb_settings": {
            "method": xtb.METHOD,
            "electronic_temperature_K": 300.0,
            "charge": 0,
            "uhf": "sum(Z) mod 2",
        },
        "counts": {
            "n_tasks": config["n_tasks"],
            "n_labelled": len(s),
            "n_failed": len(failures),
            "failed_by_stage": by_stage,
        },
        "failures_log": f"work/{job.name}/{FAILURES}",
    }
    target_info = {
        "energy": {"description": "GFN2-xTB total energy", "report_unit": "eV"},
        "energy_per_atom": {"description": "GFN2-xTB energy per atom", "report_unit": "meV/atom"},
        "xtb_gap": {"description": "GFN2-xTB HOMO-LUMO gap", "report_unit": "eV"},
        "xtb_dipole": {"description": "GFN2-xTB dipole magnitude", "report_unit": "D"},
    }
    source = {
        "format": "xtb-labelled",
        "label": f"xtb:{job.name}",
        "store": store.name,
        "store_content_hash": store.content_hash,
    }
    path = write_store(
        s,
        target,
        name=job.name,
        kind="forcefield",
        source=source,
        target_info=target_info,
        extra=extra,
        overwrite=overwrite,
    )
    return path, len(s)
