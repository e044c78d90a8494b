"""MatterSim's DFT benchmark frames, taken from the ``mattersim==1.2.3`` source archive on PyPI.

The sdist (MIT; the data CC-BY-4.0) holds ``data/benchmarks/*.xyz``: 5,222 periodic extxyz frames
with energy (eV), forces (eV/A) and stress. :func:`fetch_mattersim` runs ``pip download`` into a
temporary folder, checks the archive's sha256 and copies only those members to ``out``. Only
``mattersim`` itself is taken as source: ``--no-binary :all:`` would also build its build
requirements (numpy, Cython) from source. No dependency of MatterSim (torch) is downloaded::

    python -m atomcollapse.data.sources.mattersim --out data/raw/mattersim
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from atomcollapse.artifacts import atomic_file, sha256_file, write_json_atomic
from atomcollapse.errors import InputError

PACKAGE = "mattersim"
VERSION = "1.2.3"
SDIST_SHA256 = "04bc55dd97bc1170c744ae93d30d773f3d8c07d35ad3efbeb817314ec0ecb16b"
MEMBER_DIR = ("data", "benchmarks")
SOURCE_JSON = "mattersim_source.json"


@dataclass(frozen=True)
class FetchedFile:
    name: str
    frames: int
    sha256: str


def count_xyz_frames(path: str | Path) -> int:
    """Number of frames in an (ext)xyz file: atom-count line, comment line, atom lines."""
    frames = 0
    with open(path) as f:
        while line := f.readline():
            if not line.strip():
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                raise InputError("not an xyz atom-count line", file=Path(path).name,
                                 record=f"frame {frames}") from None  # fmt: skip
            for _ in range(n + 1):
                if not f.readline():
                    raise InputError(
                        "truncated frame", file=Path(path).name, record=f"frame {frames}"
                    )
            frames += 1
    return frames


def _benchmark_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular ``<root>/data/benchmarks/<name>.xyz`` members; links or ``..`` are refused."""
    members = []
    for m in tar.getmembers():
        parts = PurePosixPath(m.name).parts
        if len(parts) != 4 or tuple(parts[1:3]) != MEMBER_DIR or not parts[3].endswith(".xyz"):
            continue
        if not m.isfile() or ".." in parts or m.name.startswith("/"):
            raise InputError("unsafe archive member", file=Path(str(tar.name)).name, record=m.name)
        members.append(m)
    return members


def _pip_download(dest: Path, timeout: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
           "--disable-pip-version-check", "-q", f"{PACKAGE}=={VERSION}",
           "-d", str(dest)]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"pip download timed out after {timeout:.0f} s; offline?",
                         file=f"{PACKAGE}=={VERSION}") from None  # fmt: skip
    archives = sorted(dest.glob(f"{PACKAGE}-{VERSION}.tar.gz"))
    if out.returncode != 0 or not archives:
        lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exit code {out.returncode}"
        raise InputError(f"cannot download the source archive from PyPI (offline?): {reason}",
                         file=f"{PACKAGE}=={VERSION}")  # fmt: skip
    return archives[0]


def _already_there(out: Path) -> list[FetchedFile] | None:
    try:
        record = json.loads((out / SOURCE_JSON).read_text())
        files = [FetchedFile(**f) for f in record["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if all((out / f.name).is_file() and sha256_file(out / f.name) == f.sha256 for f in files):
        return files
    return None


def fetch_mattersim(out: str | Path, *, timeout: float = 300.0) -> list[FetchedFile]:
    """Put MatterSim's benchmark ``.xyz`` files into ``out``; return names, frame counts, hashes.

    Does nothing when ``out`` already holds them with the recorded hashes. Each file is written
    under a temporary name and renamed, so an interrupted run leaves no partial file.
    """
    out = Path(out)
    if (files := _already_there(out)) is not None:
        return files
    with tempfile.TemporaryDirectory(prefix="atomcollapse-mattersim-") as tmp:
        archive = _pip_download(Path(tmp), timeout)
        digest = sha256_file(archive)
        if digest != SDIST_SHA256:
            raise InputError(f"sha256 {digest[:16]}... is not the expected {SDIST_SHA256[:16]}...",
                             file=archive.name)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        files = []
        with tarfile.open(archive, "r:gz") as tar:
            members = _benchmark_members(tar)
            if not members:
                raise InputError("no data/benchmarks/*.xyz in the archive", file=archive.name)
            for m in members:
                name = PurePosixPath(m.name).name
                files.append(_write_member(tar, m, out / name))
    write_json_atomic(out / SOURCE_JSON, {
        "package": f"{PACKAGE}=={VERSION}", "archive_sha256": SDIST_SHA256,
        "license": "MIT (code), CC-BY-4.0 (data)", "files": [f.__dict__ for f in files],
    })  # fmt: skip
    return files


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> FetchedFile:
    src = tar.extractfile(member)
    if src is None:
        raise InputError(
            "unreadable archive member", file=Path(str(tar.name)).name, record=member.name
        )
    with atomic_file(dest, suffix=".part") as tmp:
        with open(tmp, "wb") as f:
            while block := src.read(1 << 20):
                f.write(block)
        frames = count_xyz_frames(tmp)
    return FetchedFile(name=dest.name, frames=frames, sha256=sha256_file(dest))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m atomcollapse.data.sources.mattersim", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the .xyz files")
    args = p.parse_args(argv)
    try:
        files = fetch_mattersim(args.out)
    except InputError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    for f in files:
        print(f"{args.out / f.name}  {f.frames:,} frames")
    print(f"{len(files)} files, {sum(f.frames for f in files):,} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
