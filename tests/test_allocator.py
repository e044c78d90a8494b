"""The console script's allocator settings (glibc malloc thresholds read at start-up)."""

from __future__ import annotations

import sys

from atomcollapse import cli


def test_allocator_env_adds_both_thresholds_and_keeps_user_values(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for key in cli.ALLOCATOR_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    env = cli.allocator_env()
    assert env is not None
    assert env["MALLOC_MMAP_THRESHOLD_"] == cli.ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"]
    assert env["MALLOC_TRIM_THRESHOLD_"] == "12345"  # a user's own setting wins


def test_allocator_env_is_none_when_set_or_not_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for key, value in cli.ALLOCATOR_ENV.items():
        monkeypatch.setenv(key, value)
    assert cli.allocator_env() is None  # no second re-exec
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli.allocator_env() is None


def test_reexec_runs_the_same_program_not_whatever_package_is_in_the_cwd(tmp_path):
    script = tmp_path / "atomcollapse"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert cli.reexec_argv([str(script), "train", "--help"]) == [str(script), "train", "--help"]
    main_py = tmp_path / "atomcollapse" / "__main__.py"
    assert cli.reexec_argv([str(main_py), "x"]) == [sys.executable, "-m", "atomcollapse", "x"]
    assert cli.reexec_argv([str(tmp_path / "missing"), "x"]) is None
    assert cli.reexec_argv([]) is None
