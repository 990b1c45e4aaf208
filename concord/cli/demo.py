"""``concord demo``: the sandbox sync, run from a checkout of the concord repository.

The sandbox (loopback ERPs and CRM) is development tooling, not part of the installed package:
it is imported by name, only when a command needs it (``concord demo``, ``concord sandbox``),
from the installed environment or from the checkout in the current directory. ``make demo``
runs the demo; so does ``python -m sandbox demo``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from concord.cli.command import DEFAULT_CONFIG, ConfigOpt
from concord.errors import ConcordError

DEMO_ENTRY = "sandbox.demo"


def checkout_module(dotted: str) -> Any:
    """A sandbox module, from the environment or the checkout in the current folder."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError:
        checkout = Path.cwd()
        if not (checkout / "sandbox" / "demo.py").is_file():
            raise ConcordError(
                "the demo and its sandboxes run from a checkout of the concord repository "
                "(`make demo`); the installed package ships no sandbox"
            ) from None
        sys.path.insert(0, str(checkout))
        return importlib.import_module(dotted)


def demo(
    config: ConfigOpt = DEFAULT_CONFIG,
    customers: Annotated[int, typer.Option(help="Sandbox customers to generate.")] = 60,
) -> None:
    """Start the sandbox ERP and CRM on loopback, run one full sync, show the result."""
    checkout_module(DEMO_ENTRY).run_demo(config, customers=customers)
