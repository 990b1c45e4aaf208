"""The overrides file: what it accepts and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from concord.errors import ConfigError
from concord.overrides import load_overrides


def test_overrides_file_is_read_with_reasons_and_locations(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(
        "force_merge:\n  - records: [a:1, b:2]\n    reason: renamed\nnever_merge:\n  - [a:3, b:4]\n"
    )
    o = load_overrides(path)
    assert o.forced("b:2", "a:1") is not None
    assert o.forced("b:2", "a:1").reason == "renamed"  # type: ignore[union-attr]
    assert o.never("a:3", "b:4") is not None
    assert o.never("a:1", "b:2") is None


def test_a_malformed_entry_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text("never_merge:\n  - records: [a:1]\n")
    with pytest.raises(ConfigError) as err:
        load_overrides(path)
    assert f"{path}:2" in err.value.message


def test_a_pair_in_both_lists_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text("never_merge: [[a:1, b:2]]\nforce_merge: [[b:2, a:1]]\n")
    with pytest.raises(ConfigError, match="both force_merge and never_merge"):
        load_overrides(path)


def test_no_overrides_file_configured_means_none() -> None:
    assert load_overrides(None).force_merge == ()
