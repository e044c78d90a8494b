"""One writer per artifact, and children that do not outlive the command that started them.

:func:`artifact_lock` is an advisory ``flock`` on ``.<name>.lock`` beside the artifact: a second
writer gets one InputError line; the kernel drops the lock of a process that dies (even by
SIGKILL), so the next writer takes over a stale lock file and removes the dead writer's
temporary files (``.<name>.tmp-*``, ``.<name>.old-*``, ``.<name>.*.tmp``) before it writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from atomcollapse.errors import InputError

#: set by ``bench`` for the cells it starts: the child asks the kernel for SIGTERM when it dies
PARENT_ENV = "ATOMCOLLAPSE_PARENT_PID"

_held: dict[Path, int] = {}  # lock file -> depth, for this process (re-entrant)
_guard = threading.Lock()


def lock_path(target: str | Path) -> Path:
    target = Path(target).absolute()
    return target.parent / f".{target.name}.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "unknown"


def clean_leftovers(target: str | Path) -> list[Path]:
    """Remove temporary files a dead writer of ``target`` left beside it (call under its lock)."""
    target = Path(target).absolute()
    removed = []
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*", f".{target.name}.*.tmp"):
        for p in target.parent.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@contextlib.contextmanager
def artifact_lock(target: str | Path, command: str = "atomcollapse") -> Iterator[None]:
    """Hold the one-writer lock of ``target`` (a store, split, run, checkpoint, report...).

    Re-entrant within a process; a lock held by another live process is one InputError naming
    ``target`` and the holder; a stale one (its process died) is taken over.
    """
    import fcntl

    path = lock_path(target)
    with _guard:
        if path in _held:
            _held[path] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[path] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create its folder ({e.strerror})", file=target) from None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"another process is writing it ({_holder(path)}); wait for it to finish or stop "
                f"it (lock {path.name})",
                file=target,
            ) from None
        try:  # the holder before us may have removed the file: lock the one at the path
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} {command}\n".encode())
        clean_leftovers(target)
        with _guard:
            _held[path] = 1
        yield
    finally:
        with _guard:
            _held.pop(path, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def die_with_parent() -> None:
    """In a cell started by ``bench``: get SIGTERM when the bench process dies (Linux), even by
    SIGKILL, so that no cell outlives it."""
    ppid = os.environ.pop(PARENT_ENV, None)
    if not ppid or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(ppid):  # the parent died before the request: go now
        os.kill(os.getpid(), signal.SIGTERM)


#: fault injection for the kill tests: ``<point>`` or ``<point>:<n>`` (the n-th time there)
FAULT_ENV = "ATOMCOLLAPSE_FAULT"
_passes: dict[str, int] = {}


def fault(point: str) -> None:
    """SIGKILL this process at ``point`` when $ATOMCOLLAPSE_FAULT asks for it (tests only)."""
    want = os.environ.get(FAULT_ENV)
    if not want or not want.startswith(point):
        return
    name, _, nth = want.partition(":")
    if name != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
