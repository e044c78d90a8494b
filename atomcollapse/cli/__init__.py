"""The ``atomcollapse`` command line: parses, validates, calls the layers, prints with rich."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.text import Text

from atomcollapse import __version__
from atomcollapse.cli.common import err_console, state
from atomcollapse.errors import InputError

app = typer.Typer(
    name="atomcollapse",
    help="Measure whether adapting a pretrained atomistic model destroys its OOD generalisation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    data_root: Path | None = typer.Option(
        None,
        "--data-root",
        envvar="ATOMCOLLAPSE_DATA",
        help="Folder for stores/ and raw/ \\[default: ./data].",
    ),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    state.data_root = data_root


def _register() -> None:
    from atomcollapse.cli import datasets, ingest, label, split

    app.add_typer(ingest.app, name="ingest")
    app.add_typer(datasets.app, name="datasets")
    app.add_typer(split.app, name="split")
    app.add_typer(label.app, name="label")


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=False)
    except InputError as e:
        err_console.print(Text.assemble(("error: ", "bold red"), e.line()), soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except SystemExit as e:  # typer.Exit and usage errors
        return int(e.code or 0) if isinstance(e.code, int) else 1
    except Exception as e:  # click usage errors come through standalone_mode=False
        try:
            import click
        except ModuleNotFoundError:  # typer >= 0.2x vendors click as typer._click
            from typer import _click as click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return 2
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
