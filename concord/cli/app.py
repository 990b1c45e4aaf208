"""The ``concord`` command line: thin commands over library calls, output through one console.

Each command group lives in its own module (``sync``, ``push``, ``runs``, ``customers``,
``mappings``, ``schema``, ``demo``, ``sandbox``); this module assembles them under one top-level
group whose error handler (``concord.cli.command``) turns any ``ConcordError`` into one clear
line, with the traceback under ``--verbose`` (given anywhere on the line), for every command.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from concord.cli import (
    crm,
    customers,
    demo,
    identity,
    mappings,
    push,
    runs,
    sandbox,
    schema,
    sync,
)
from concord.cli.command import ConcordCommand, ConcordGroup, Verbosity
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
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs (anywhere).")
    ] = False,
) -> None:
    """concord: one customer across ERPs and CRMs."""
    Verbosity.on = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # after basicConfig: its handler's output is redacted too


for name, command in (
    ("sync", sync.sync),
    ("remap", sync.remap),
    ("push", push.push),
    ("demo", demo.demo),
    ("runs", runs.runs),
    ("rejects", runs.rejects),
    ("schema", schema.schema),
):
    app.command(name, cls=ConcordCommand)(command)
app.add_typer(crm.crm_app, name="crm")
app.add_typer(customers.customers_app, name="customers")
app.add_typer(identity.identity_app, name="identity")
app.add_typer(mappings.mappings_app, name="mappings")
app.add_typer(sandbox.sandbox_app, name="sandbox")
