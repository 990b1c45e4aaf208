"""Every CRM target is a ``Target`` that can also resolve merges, is found by its registry name,
and refuses a misspelt setting naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.config import TargetConfig
from concord.contracts import MergingTarget, Target, build_target, target_type
from concord.errors import ConfigError
from concord.push.plan import batch_size

SETTINGS = {
    "hubspot": {"base_url": "http://127.0.0.1:9"},
    "salesforce": {"instance_url": "http://127.0.0.1:9"},
    "rest": {"base_url": "http://127.0.0.1:9"},
}


def config(type_name: str, **extra: object) -> TargetConfig:
    cfg = TargetConfig.model_validate(
        {"type": type_name, "mapping": Path("m.yaml"), **SETTINGS[type_name], **extra}
    )
    cfg.name = f"my_{type_name}"
    return cfg


@pytest.mark.parametrize("type_name", sorted(SETTINGS))
def test_each_target_is_a_target_that_can_resolve_merges(type_name: str) -> None:
    target = build_target(config(type_name))
    try:
        assert isinstance(target, Target)
        assert isinstance(target, MergingTarget)
        assert target.name == f"my_{type_name}"
    finally:
        target.close()


@pytest.mark.parametrize("type_name", sorted(SETTINGS))
def test_a_misspelt_setting_names_the_key(type_name: str) -> None:
    with pytest.raises(ConfigError, match=rf"targets\.my_{type_name}\.objekt_type"):
        build_target(config(type_name, objekt_type="companies"))


def test_batch_size_is_the_targets_own_unless_configured() -> None:
    def size(type_name: str, **extra: object) -> int:
        return batch_size(config(type_name, **extra), target_type(type_name))

    assert size("hubspot") == 100
    assert size("salesforce") == 200
    assert size("rest") == 100
    assert size("salesforce", batch_size=50) == 50
    assert size("hubspot", batch_size=500) == 100
