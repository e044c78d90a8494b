"""``--launcher slurm``: the cells as one SLURM job array through ``submitit``.

Each array task runs :func:`atomcollapse.bench.runner.execute` on one cell, the same
``atomcollapse train`` command as the local runner, and writes the same status file. The
submission returns at once; ``bench SPEC --collect`` later finds the finished runs (by
identity) and reports. ``[slurm] cluster = "local"`` runs the array through submitit's local
executor instead (for trying a spec out on one machine, and for the tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atomcollapse.artifacts import now_utc, write_json_atomic
from atomcollapse.bench.runner import THREAD_VARS, Job, execute
from atomcollapse.errors import InputError

SUBMITTED = "submitted.json"
DEFAULT_TIMEOUT_MIN = 24 * 60
#: SLURM job states in which a cell must not be submitted again
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING",
                    "SUSPENDED"})  # fmt: skip


def _submitit() -> Any:
    try:
        import submitit
    except ModuleNotFoundError:
        raise InputError(
            "--launcher slurm needs submitit (pip install 'atomcollapse[slurm]')"
        ) from None
    return submitit


def executor(folder: Path, settings: dict[str, Any], gpus_per_cell: int, name: str) -> Any:
    """A submitit executor for the spec's ``[slurm]`` settings."""
    submitit = _submitit()
    cluster = settings.get("cluster", "slurm")
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    params: dict[str, Any] = {
        "name": f"bench-{name}",
        "timeout_min": int(settings.get("timeout_min", DEFAULT_TIMEOUT_MIN)),
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if "cpus_per_task" in settings:
        params["cpus_per_task"] = int(settings["cpus_per_task"])
    if "mem_gb" in settings:
        params["mem_gb"] = float(settings["mem_gb"])
    if cluster == "slurm":
        params["gpus_per_node"] = int(settings.get("gpus_per_node", gpus_per_cell))
        for key in ("partition", "account", "qos", "array_parallelism"):
            if key in settings:
                params[f"slurm_{key}"] = settings[key]
        if "additional" in settings:
            params["slurm_additional_parameters"] = dict(settings["additional"])
    ex.update_parameters(**params)
    return ex


def job_env(settings: dict[str, Any], gpus_per_cell: int) -> dict[str, str]:
    """Threads per process from ``cpus_per_task`` (SLURM sets the GPUs itself)."""
    cpus = int(settings.get("cpus_per_task", 1))
    return {v: str(max(1, cpus // gpus_per_cell)) for v in THREAD_VARS}


def submit(jobs: list[Job], out: Path, settings: dict[str, Any], *, gpus_per_cell: int,
           name: str) -> list[Any]:  # fmt: skip
    """Submit ``jobs`` as one array; records job ids in ``<out>/slurm/submitted.json``."""
    if not jobs:
        return []
    folder = out / "slurm"
    ex = executor(folder, settings, gpus_per_cell, name)
    env = job_env(settings, gpus_per_cell)
    launcher = f"submitit-{settings.get('cluster', 'slurm')}"
    for job in jobs:
        job.status.unlink(missing_ok=True)
    try:
        handles = ex.map_array(execute, jobs, [env] * len(jobs), [launcher] * len(jobs))
    except FileNotFoundError as e:
        raise InputError(f"cannot submit to SLURM ({e.filename or e} not found)") from None
    record = load_submitted(out)
    for job, h in zip(jobs, handles, strict=True):
        record[job.cell_id] = {"cell": job.label, "job_id": str(h.job_id), "submitted_at": now_utc(),
                               "run_dir": str(job.run_dir), "log": str(job.log),
                               "status": str(job.status)}  # fmt: skip
    write_json_atomic(folder / SUBMITTED, record)
    return handles


def load_submitted(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "slurm" / SUBMITTED
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt submission record ({e.msg})", file=path) from None
    return data if isinstance(data, dict) else {}


def in_flight(out: Path, settings: dict[str, Any]) -> set[str]:
    """Cells submitted earlier that have no outcome yet and whose job is still queued or running."""
    waiting = {cid: r for cid, r in load_submitted(out).items() if not Path(r["status"]).is_file()}
    if not waiting:
        return set()
    cluster = settings.get("cluster", "slurm")
    if cluster != "slurm":
        return {cid for cid, r in waiting.items() if _pid_alive(r["job_id"])}
    submitit = _submitit()
    active = set()
    for cid, r in waiting.items():
        try:
            state = submitit.SlurmJob(out / "slurm" / "%j", r["job_id"]).state
        except Exception:  # sacct unavailable: assume the job may still run
            state = "UNKNOWN"
        if state.split()[0] in ACTIVE or state == "UNKNOWN":
            active.add(cid)
    return active


def _pid_alive(job_id: str) -> bool:
    import os

    try:
        os.kill(int(job_id), 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return False
    return True
