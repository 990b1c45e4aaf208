"""``concord demo``: the sandbox sync, run from a checkout of the concord repository.

The sandbox (loopback ERPs and CRM) is development tooling, not part of the installed package:
it is imported by name, only when this command runs, from the installed environment or from the
checkout in the current directory. ``make demo`` runs it; so does ``python -m sandbox demo``.
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


def _demo_module() -> Any:
    """The sandbox's demo module, from the environment or the checkout in the current folder."""
    try:
        return importlib.import_module(DEMO_ENTRY)
    except ModuleNotFoundError:
        checkout = Path.cwd()
        if not (checkout / "sandbox" / "demo.py").is_file():
            raise ConcordError(
                "concord demo runs from a checkout of the concord repository (`make demo`); "
                "the installed package ships no sandbox"
            ) from None
        sys.path.insert(0, str(checkout))
        return importlib.import_module(DEMO_ENTRY)


def demo(
    config: ConfigOpt = DEFAULT_CONFIG,
    customers: Annotated[int, typer.Option(help="Sandbox customers to generate.")] = 60,
) -> None:
    """Start the sandbox ERP and CRM on loopback, run one full sync, show the result."""
    _demo_module().run_demo(config, customers=customers)
