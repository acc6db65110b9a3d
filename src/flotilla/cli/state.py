"""The one CliContext of this process (Typer commands are plain functions)."""

from flotilla.cli.context import CliContext

STATE = CliContext()
