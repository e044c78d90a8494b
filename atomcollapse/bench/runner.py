"""Running cells: each one a ``python -m atomcollapse train ...`` subprocess, so that a crash of
one cell never takes the sweep down; its output goes to a log and its outcome to a status file.

Each cell runs in its own process group (session): stopping ``bench`` with SIGTERM or SIGINT
stops every running cell's whole group and starts no further cell; a cell also gets SIGTERM
from the kernel when ``bench`` dies by SIGKILL (Linux), and the lock on its run directory keeps
a second writer out while anything of it is still alive.

Locally, ``--jobs N`` runs N cells at once with the CPU cores divided between them
(``OMP_NUM_THREADS`` = cores // (N x processes per cell)) and, when several GPUs are visible,
its own GPUs per job through ``CUDA_VISIBLE_DEVICES``. A cell that wants more than one GPU is
started under ``torchrun`` (the training command's data-parallel mode).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from atomcollapse.artifacts import MANIFEST, header, now_utc, write_json_atomic
from atomcollapse.errors import InputError
from atomcollapse.parallel import usable_cpus
from atomcollapse.process import PARENT_ENV

#: the program a cell runs, before its ``train ...`` arguments (tests replace it)
TRAIN_PROGRAM: list[str] = [sys.executable, "-m", "atomcollapse"]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: files ``train`` writes before its manifest: a directory holding only these is a dead start
_EARLY_FILES = frozenset({"config.json", "train.log"})


@dataclass(frozen=True)
class Job:
    """One cell to run: its command, its run directory, where its log and status go."""

    cell_id: str
    label: str
    argv: tuple[str, ...]  # the whole command: launcher, then ``train ...``
    run_dir: Path
    log: Path
    status: Path


@dataclass(frozen=True)
class Outcome:
    cell_id: str
    label: str
    returncode: int
    seconds: float
    log: Path
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def program(gpus_per_cell: int) -> list[str]:
    """The launcher: the plain training command, or torchrun with one process per GPU."""
    if gpus_per_cell <= 1:
        return list(TRAIN_PROGRAM)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(gpus_per_cell)]  # fmt: skip
    return [*torchrun, *TRAIN_PROGRAM[1:]]


def cpu_cores() -> int:
    return usable_cpus()


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES``, else torch's device count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in (x.strip() for x in env.split(",")) if g and g != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # torch absent or CUDA unusable: no GPU
        return []


def slot_envs(n_jobs: int, gpus_per_cell: int, *, cores: int | None = None,
              gpus: list[str] | None = None) -> list[dict[str, str]]:  # fmt: skip
    """Environment of each parallel slot: its thread count and, with several GPUs, its GPUs."""
    cores = cpu_cores() if cores is None else cores
    gpus = visible_gpus() if gpus is None else gpus
    if gpus_per_cell > 1 and len(gpus) < gpus_per_cell:
        raise InputError(f"gpus_per_cell is {gpus_per_cell} but {len(gpus)} GPU(s) are visible")
    if len(gpus) > 1:
        n_jobs = max(1, min(n_jobs, len(gpus) // gpus_per_cell))
    threads = max(1, cores // (n_jobs * gpus_per_cell))
    envs = []
    for k in range(n_jobs):
        env = {v: str(threads) for v in THREAD_VARS}
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(
                gpus[(k * gpus_per_cell + i) % len(gpus)] for i in range(gpus_per_cell)
            )
        envs.append(env)
    return envs


def clear_dead_start(run_dir: Path) -> None:
    """Remove a run directory that a killed ``train`` left before writing its manifest."""
    if not run_dir.is_dir() or (run_dir / MANIFEST).exists():
        return
    names = {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    if names <= _EARLY_FILES:
        shutil.rmtree(run_dir)


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


class Stopping(Exception):
    """``bench`` is stopping: a cell not yet started is left as it was (no status, no run)."""


class _Children:
    """The cells running now, so that a signal to ``bench`` can stop their process groups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.stopping = False

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        with self._lock:
            if self.stopping:
                raise Stopping(argv)
            proc = subprocess.Popen(argv, start_new_session=True, **kw)
            self._procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def signal_all(self, sig: int) -> None:
        with self._lock:
            self.stopping = True
            for p in self._procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every running cell's group, SIGKILL what is left after ``grace`` seconds."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if all(p.poll() is not None for p in self._procs):
                    return
            time.sleep(0.05)
        self.signal_all(signal.SIGKILL)


CHILDREN = _Children()


def execute(job: Job, env: dict[str, str], launcher: str = "local") -> Outcome:
    """Run one cell to the end; the outcome is also written to ``job.status`` (JSON). Raises
    :class:`Stopping`, writing no status, when ``bench`` is being stopped before the cell starts."""
    if CHILDREN.stopping:
        raise Stopping(job.label)
    job.log.parent.mkdir(parents=True, exist_ok=True)
    clear_dead_start(job.run_dir)
    started, t0 = now_utc(), time.monotonic()
    child_env = {**os.environ, **env}
    if "torch.distributed.run" not in job.argv:  # torchrun's ranks have torchrun as parent
        child_env[PARENT_ENV] = str(os.getpid())
    with open(job.log, "ab") as log:
        log.write(f"# {started} {' '.join(job.argv)}\n".encode())
        log.flush()
        try:
            proc = CHILDREN.start(list(job.argv), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=child_env)  # fmt: skip
            try:
                rc = proc.wait()
            finally:
                CHILDREN.done(proc)
        except OSError as e:
            log.write(f"cannot start: {e}\n".encode())
            rc = 127
    seconds = time.monotonic() - t0
    stopped = rc != 0 and CHILDREN.stopping  # bench was stopped: the run resumes next time
    error = None if rc == 0 else "stopped with bench" if stopped else _last_error(job.log)
    outcome = Outcome(job.cell_id, job.label, rc, seconds, job.log, error)
    inputs = {"cell": {"cell_id": job.cell_id, "run_dir": str(Path(job.run_dir).resolve())}}
    write_json_atomic(job.status, {
        **header("bench-cell-status", inputs=inputs), "cell": job.label, "cell_id": job.cell_id, "returncode": rc, "stopped": stopped, "error": error,
        "started_at": started, "finished_at": now_utc(), "seconds": round(seconds, 3),
        "run_dir": str(job.run_dir), "log": str(job.log), "launcher": launcher,
        "host": socket.gethostname(), "threads": env.get("OMP_NUM_THREADS"),
        "gpus": env.get("CUDA_VISIBLE_DEVICES"),
    })  # fmt: skip
    return outcome


def run_local(
    jobs: list[Job],
    n_jobs: int,
    *,
    gpus_per_cell: int = 1,
    on_start: Callable[[Job, dict[str, str]], None] = lambda j, e: None,
    on_done: Callable[[Outcome], None] = lambda o: None,
) -> list[Outcome]:
    """Run ``jobs`` with at most ``n_jobs`` at once; returns every outcome (in finishing order)."""
    if not jobs:
        return []
    envs = slot_envs(min(n_jobs, len(jobs)), gpus_per_cell)
    slots: queue.Queue[int] = queue.Queue()
    for k in range(len(envs)):
        slots.put(k)

    def work(job: Job) -> Outcome:
        k = slots.get()
        try:
            if CHILDREN.stopping:  # interrupted while this job queued: it never starts
                raise Stopping(job.label)
            on_start(job, envs[k])
            return execute(job, envs[k])
        finally:
            slots.put(k)

    outcomes = []
    CHILDREN.stopping = False
    pool = ThreadPoolExecutor(max_workers=len(envs))
    try:
        with _signals_interrupt():
            futures = [pool.submit(work, j) for j in jobs]
            for f in as_completed(futures):
                outcome = f.result()
                on_done(outcome)
                outcomes.append(outcome)
    except BaseException:
        CHILDREN.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM (like SIGINT) interrupts the main thread, which then stops the cells."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
