"""One redaction function masks registered secrets and secret-shaped tokens everywhere."""

from __future__ import annotations

from concord.errors import SourceError
from concord.redact import MASK, redact, register_secret


def test_registered_secret_is_masked_anywhere_in_text() -> None:
    register_secret("tok-9f8e7d6c5b")
    assert redact("failed with key tok-9f8e7d6c5b.") == f"failed with key {MASK}."


def test_bearer_header_value_is_masked() -> None:
    assert "abcdef123456" not in redact("Authorization: Bearer abcdef123456")


def test_url_userinfo_password_is_masked() -> None:
    out = redact("connect to postgresql://app:pa55word@db:5432/x failed")
    assert "pa55word" not in out and "app:" in out


def test_secret_query_parameters_are_masked() -> None:
    out = redact("GET https://erp/api?page=2&api_key=K123456&access_token=T987654")
    assert "K123456" not in out and "T987654" not in out and "page=2" in out


def test_errors_are_redacted_when_built() -> None:
    register_secret("another-secret-42")
    err = SourceError("token another-secret-42 refused", source="erp")
    assert "another-secret-42" not in str(err)


def test_masking_a_query_secret_keeps_the_parameters_after_it() -> None:
    out = redact("GET /api?api_key=K123456&page=2")
    assert "K123456" not in out and "page=2" in out


def test_a_key_named_like_a_secret_masks_no_word_of_the_message_after_it() -> None:
    from concord.errors import ConfigError

    err = ConfigError("secrets must be references", file="c.yaml", line=3, key="x.password")
    assert err.message == "c.yaml:3 'x.password': secrets must be references"


def test_a_secret_value_after_its_key_is_still_masked() -> None:
    out = redact("login failed: password: hunter22 refused")
    assert "hunter22" not in out and "refused" in out
