"""The repo's ``concord.yaml`` as data, with every file path made absolute, for tests that write
a modified copy of it elsewhere (paths in a config are relative to the config file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from concord.config import absolute_paths

REPO = Path(__file__).resolve().parent.parent


def repo_config_data() -> dict[str, Any]:
    return absolute_paths(yaml.safe_load((REPO / "concord.yaml").read_text()), REPO)
