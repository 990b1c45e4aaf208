"""The ``concord`` command line (``concord.cli.app:app``); ``render`` is everything it shows."""
