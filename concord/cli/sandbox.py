"""``concord sandbox up|down``: the demo's sandboxes in the background, for the README's tour.

Like ``concord demo`` it runs from a checkout (the sandbox is not in the installed package).
``up`` prints the environment to use as ``export`` lines on standard output (so
``eval "$(concord sandbox up)"`` works) and writes it to ``var/sandbox.env``; ``down`` stops the
processes ``up`` started, and only those.
"""

from __future__ import annotations

import sys

from concord.cli.command import ConcordCommand, group
from concord.cli.demo import checkout_module
from concord.cli.render import err_console

BACKGROUND = "sandbox.background"
sandbox_app = group("Start or stop the demo's sandbox ERPs and CRM in the background.")


@sandbox_app.command("up", cls=ConcordCommand)
def up() -> None:
    """Start the sandbox ERPs and CRM in the background; print and write their environment."""
    background = checkout_module(BACKGROUND)
    started, env = background.up()
    for r in started:
        err_console.print(f"sandbox {r.name}: {r.url} (pid {r.pid})")
    err_console.print(
        f"environment written to {background.ENV_FILE}; load it with "
        f"[bold]. {background.ENV_FILE}[/]; stop the sandboxes with `concord sandbox down`"
    )
    sys.stdout.write(background.env_text(env))


@sandbox_app.command("down", cls=ConcordCommand)
def down() -> None:
    """Stop the sandboxes `concord sandbox up` started."""
    stopped = checkout_module(BACKGROUND).down()
    names = ", ".join(r.name for r in stopped) or "none were running"
    err_console.print(f"stopped: {names}")
