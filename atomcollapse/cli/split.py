"""``atomcollapse split ...`` (being written)."""

import typer

app = typer.Typer(help="Build, show and verify OOD splits.", no_args_is_help=True)
