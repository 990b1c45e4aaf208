"""``python -m concord.cli``: the same command line as the ``concord`` script."""

from concord.cli.app import app

app()
