"""The ``concord`` command line: thin commands over library calls, output through one console.

Each command group lives in its own module (``sync``, ``push``, ``runs``, ``customers``,
``mappings``, ``schema``, ``demo``); this module assembles them under one top-level group whose
error handler (``concord.cli.command``) turns any ``ConcordError`` into one clear line, with the
traceback under ``--verbose``, for every command alike.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from concord.cli import customers, demo, mappings, push, runs, schema, sync
from concord.cli.command import ConcordGroup, Verbosity
from concord.redact import install_log_redaction

app = typer.Typer(
    cls=ConcordGroup,
    help="concord: one customer across ERPs and CRMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")
    ] = False,
) -> None:
    """concord: one customer across ERPs and CRMs."""
    Verbosity.on = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # after basicConfig: its handler's output is redacted too


app.command()(sync.sync)
app.command("push")(push.push)
app.command()(demo.demo)
app.command()(runs.runs)
app.command()(runs.rejects)
app.command()(schema.schema)
app.add_typer(customers.customers_app, name="customers")
app.add_typer(mappings.mappings_app, name="mappings")
