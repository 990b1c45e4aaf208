"""What every command shares: the one error handler, ``--verbose``, clean help, ``--config``.

The top-level command group catches every ``ConcordError`` a command (or a subcommand of a
group such as ``concord mappings``) raises and prints it as one red line, with the traceback when
``--verbose`` was given, then exits with status 1 (2 for a partial run). ``--verbose``/``-v`` is
accepted anywhere on the command line. Commands raise; they never print errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from concord.cli.render import err_console
from concord.config import PipelineConfig
from concord.errors import ConcordError, ConfigError, RunPartial

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config file.", envvar="CONCORD_CONFIG")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
TargetsOpt = Annotated[
    list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
]


def target_names(config: PipelineConfig, requested: list[str] | None) -> list[str]:
    """The targets a command works on: those asked for (each must exist), else the enabled."""
    names = requested or [n for n, tc in config.targets.items() if tc.enabled]
    unknown = sorted(set(names) - set(config.targets))
    if unknown:
        raise ConfigError(
            f"unknown target {', '.join(unknown)}; known: {', '.join(config.targets) or 'none'}"
        )
    return names


DEFAULT_CONFIG = Path("concord.yaml")
VERBOSE_FLAGS = ("--verbose", "-v")
EXIT_FAILED, EXIT_PARTIAL = 1, 2


class Verbosity:
    """Whether ``--verbose`` was given (set by the top-level callback)."""

    on = False


def _without_verbose(args: list[str]) -> tuple[list[str], bool]:
    """``args`` with every ``--verbose``/``-v`` taken out (before a ``--``), and whether any was."""
    if "--" in args:
        cut = args.index("--")
        head, found = _without_verbose(args[:cut])
        return [*head, *args[cut:]], found
    kept = [a for a in args if a not in VERBOSE_FLAGS]
    return kept, len(kept) != len(args)


def _blank_flag_metavars(command: Any, ctx: Any) -> None:
    """Flags (``--dry-run``, ``--help``) take no value: show no ``<bool>`` type for them.

    (Typer bundles its own click, so parameters are recognised by what they are, not by class.)
    """
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False):
            param.metavar = ""


class ConcordCommand(TyperCommand):
    """A command whose help shows flags as flags."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Help text without type names on flags."""
        _blank_flag_metavars(self, ctx)
        super().format_help(ctx, formatter)


class ConcordGroup(TyperGroup):
    """The top-level group: ``--verbose`` anywhere, and one place a ``ConcordError`` is printed."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Move ``--verbose``/``-v`` from wherever it was given to the top level."""
        args, verbose = _without_verbose(list(args))
        return super().parse_args(ctx, ["--verbose", *args] if verbose else args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help without type names on flags."""
        _blank_flag_metavars(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a ``ConcordError`` is printed (traced with ``--verbose``)."""
        try:
            return super().invoke(ctx)
        except ConcordError as exc:
            if Verbosity.on:
                err_console.print_exception()
            err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
            raise typer.Exit(EXIT_PARTIAL if isinstance(exc, RunPartial) else EXIT_FAILED) from None


class _SubGroup(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _blank_flag_metavars(self, ctx)
        super().format_help(ctx, formatter)


def group(help_text: str) -> typer.Typer:
    """A command group (``concord customers``, ``concord mappings``)."""
    return typer.Typer(help=help_text, no_args_is_help=True, cls=_SubGroup)
