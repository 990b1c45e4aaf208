"""The repo's ``concord.yaml`` as data, with every file path made absolute, for tests that write
a modified copy of it elsewhere (paths in a config are relative to the config file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def repo_config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "concord.yaml").read_text())
    for source in data.get("sources", {}).values():
        for entity in source.get("entities", {}).values():
            entity["mapping"] = str(REPO / entity["mapping"])
    for target in data.get("targets", {}).values():
        for key in ("mapping", "person_mapping"):
            if key in target:
                target[key] = str(REPO / target[key])
    identity = data.get("identity") or {}
    if identity.get("overrides"):
        identity["overrides"] = str(REPO / identity["overrides"])
    return data
