"""The ``atomcollapse`` command line: parses, validates, calls the layers, prints with rich."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from atomcollapse import __version__
from atomcollapse.cli.common import err_console, state
from atomcollapse.errors import InputError

if TYPE_CHECKING:
    from typer._click.exceptions import ClickException as _ClickException

app = typer.Typer(
    name="atomcollapse",
    help="Measure whether adapting a pretrained atomistic model destroys its OOD generalisation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    data_root: Path | None = typer.Option(
        None,
        "--data-root",
        envvar="ATOMCOLLAPSE_DATA",
        help="Folder for stores/ and raw/ \\[default: ./data].",
    ),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    state.data_root = data_root


def _register() -> None:
    from atomcollapse.cli import (
        bench,
        checkpoint,
        datasets,
        ingest,
        label,
        models,
        predict,
        report,
        split,
        train,
    )  # fmt: skip

    app.add_typer(ingest.app, name="ingest")
    app.add_typer(datasets.app, name="datasets")
    app.add_typer(checkpoint.app, name="checkpoint")
    app.add_typer(split.app, name="split")
    app.add_typer(label.app, name="label")
    app.command("pretrain")(train.pretrain)
    app.command("train")(train.train)
    app.command("models")(models.models)
    app.command("predict")(predict.predict)
    report.register(app)
    bench.register(app)


_register()


def _click_exception_type() -> type[_ClickException] | None:
    """click's ClickException, wherever this typer version keeps it (typer 0.2x vendors click)."""
    try:
        from click.exceptions import ClickException
    except ModuleNotFoundError:
        try:
            from typer._click.exceptions import ClickException  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return None
    return ClickException


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        rv = app(args=argv, prog_name="atomcollapse", standalone_mode=False)
    except InputError as e:
        err_console.print(Text.assemble(("error: ", "bold red"), e.line()), soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as e:  # typer.Exit and usage errors
        return int(e.code or 0) if isinstance(e.code, int) else 1
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except typer.Abort:
        return 1
    except Exception as e:  # usage errors surface here with standalone_mode=False
        usage_error = _click_exception_type()
        if usage_error is not None and isinstance(e, usage_error):
            ctx = getattr(e, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            line = e.format_message().replace("\n", " ") + hint
            err_console.print(Text.assemble(("error: ", "bold red"), line), soft_wrap=True)
            return 2
        raise
    return rv if isinstance(rv, int) else 0


#: glibc hands big blocks back to the OS on free: blocks over its mmap threshold (32 MiB by
#: default) are unmapped, and freed memory at the top of the heap is trimmed once it passes the
#: trim threshold (128 KiB once the mmap threshold is set). PaiNN's per-message tensors at batch
#: 128 are tens of MiB each and are page-faulted in again every step, which costs about 3x on an
#: elementwise op. glibc reads these once, at start-up, so the console script re-executes itself
#: with them set (benchmarks/ run both sides of a comparison under the same setting).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def allocator_env() -> dict[str, str] | None:
    """``os.environ`` plus :data:`ALLOCATOR_ENV`, or None when nothing needs to change."""
    if not sys.platform.startswith("linux") or all(k in os.environ for k in ALLOCATOR_ENV):
        return None
    return {**ALLOCATOR_ENV, **os.environ}


def reexec_argv(argv: list[str]) -> list[str] | None:
    """The command line that runs this same program again, or None when there is none.

    The console script re-runs itself (``python -m atomcollapse`` would put the current folder
    first on ``sys.path`` and could import another checkout's package); ``python -m
    atomcollapse`` re-runs as such.
    """
    if not argv:
        return None
    if Path(argv[0]).name == "__main__.py":
        return [sys.executable, "-m", "atomcollapse", *argv[1:]]
    if os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK):
        return list(argv)
    return None


def entry() -> None:
    """Console-script entry: set the allocator thresholds (Linux), then run :func:`main`."""
    from atomcollapse.process import die_with_parent

    env = allocator_env()
    argv = reexec_argv(sys.argv)
    if env is not None and argv is not None:
        with contextlib.suppress(OSError):  # run without them rather than fail
            os.execve(argv[0], argv, env)
    die_with_parent()
    sys.exit(main())


if __name__ == "__main__":
    entry()
