"""What every command shares: the one error handler, ``--verbose``, and the ``--config`` option.

The top-level command group catches every ``ConcordError`` a command (or a subcommand of a
group such as ``concord mappings``) raises and prints it as one red line, with the traceback when
``--verbose`` was given, then exits with status 1. Commands raise; they never print errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from concord.cli.render import err_console
from concord.errors import ConcordError

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config file.", envvar="CONCORD_CONFIG")
]
DEFAULT_CONFIG = Path("concord.yaml")


class Verbosity:
    """Whether ``--verbose`` was given (set by the top-level callback)."""

    on = False


class ConcordGroup(TyperGroup):
    """The top-level group: one place where a ``ConcordError`` becomes one line and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a ``ConcordError`` is printed (traced with ``--verbose``)."""
        try:
            return super().invoke(ctx)
        except ConcordError as exc:
            if Verbosity.on:
                err_console.print_exception()
            err_console.print(f"[bold red]error:[/] {exc.message}")
            raise typer.Exit(1) from None


def group(help_text: str) -> typer.Typer:
    """A command group (``concord customers``, ``concord mappings``)."""
    return typer.Typer(help=help_text, no_args_is_help=True)
