"""The ``identity`` section of concord.yaml: shorthands, defaults and errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.config import IdentityConfig, load_config
from concord.errors import ConfigError


def test_rule_shorthands_and_defaults() -> None:
    cfg = IdentityConfig.model_validate(
        {"rules": ["email", {"name": "names", "type": "fuzzy_name", "threshold": 90}]}
    )
    assert [(r.name, r.type) for r in cfg.rules] == [("email", "email"), ("names", "fuzzy_name")]
    assert cfg.rules[1].threshold == 90
    assert cfg.rules[1].corroborate["phone"] == 2.0
    assert [r.type for r in IdentityConfig().rules] == ["crossref", "identifier", "probabilistic"]


def test_corroborate_accepts_a_list_or_weights() -> None:
    listed = IdentityConfig.model_validate(
        {"rules": [{"name": "fuzzy_name", "corroborate": ["postcode", "phone"]}]}
    )
    assert listed.rules[0].corroborate == {"postcode": 1.0, "phone": 2.0}


def test_survivorship_shorthand_and_source_priority_default() -> None:
    cfg = IdentityConfig.model_validate(
        {
            "survivorship": {
                "source_priority": ["erp_b", "erp_a"],
                "fields": {"name": "source_priority", "email": "most_frequent"},
            }
        }
    )
    assert cfg.survivorship.for_field("name").sources == ["erp_b", "erp_a"]
    assert cfg.survivorship.for_field("email").strategy == "most_frequent"
    assert cfg.survivorship.for_field("phone").strategy == "original"  # the default
    assert cfg.survivorship.for_field("phone").sources == ["erp_b", "erp_a"]


def test_a_bad_rule_type_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "concord.yaml"
    path.write_text(
        "sources: {}\nidentity:\n  rules:\n    - crossref\n    - {name: x, type: soundex}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message
    assert "identity.rules.1" in err.value.message


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        IdentityConfig.model_validate({"rules": ["email", "email"]})


def test_the_retired_name_threshold_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="concord.config"):
        config = IdentityConfig.model_validate({"name_threshold": 95})
    assert not hasattr(config, "name_threshold")
    assert "name_threshold never had an effect" in caplog.text
