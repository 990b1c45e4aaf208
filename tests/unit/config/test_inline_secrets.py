"""Secrets by value are refused wherever they are written: under a secret key, as a header
value, as a query parameter, inside a URL (a password or a key in its query), and in the settings
of a source built without the YAML loader; references and harmless values pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concord.config import EntityConfig, SourceConfig, load_config
from concord.contracts import build_source
from concord.errors import ConfigError
from concord.secrets import inline_secret, secret_name

BASE = """\
store_url: STORE
sources:
  erp:
    type: rest
    base_url: BASE
    auth: {type: bearer, token: {env: ERP_TOKEN}}
    headers: HEADERS
    params: PARAMS
    entities:
      orders: {path: /orders, mapping: m.yaml}
"""


def write(
    tmp_path: Path,
    *,
    store: str = "sqlite:///var/x.db",
    base: str = "http://127.0.0.1:1",
    headers: str = "{}",
    params: str = "{}",
) -> Path:
    (tmp_path / "m.yaml").write_text("direction: inbound\n")
    text = (
        BASE.replace("STORE", store)
        .replace("BASE", base)
        .replace("HEADERS", headers)
        .replace("PARAMS", params)
    )
    path = tmp_path / "concord.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("field", "value", "key", "line"),
    [
        ("headers", "{Authorization: 'Bearer abc123tok'}", "sources.erp.headers.Authorization", 7),
        ("headers", "{X-API-Key: k-998877}", "sources.erp.headers.X-API-Key", 7),
        ("headers", "{X-Custom: 'Basic dXNlcjpwdw=='}", "sources.erp.headers.X-Custom", 7),
        ("headers", "{Cookie: 'sid=abc'}", "sources.erp.headers.Cookie", 7),
        ("params", "{api_key: k-998877}", "sources.erp.params.api_key", 8),
        ("params", "{access_token: tok-55aa1}", "sources.erp.params.access_token", 8),
        ("params", "{signature: sig-55aa2}", "sources.erp.params.signature", 8),
    ],
)
def test_a_secret_header_or_query_parameter_in_the_file_is_refused(
    tmp_path: Path, field: str, value: str, key: str, line: int
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, **{field: value}))
    message = str(info.value)
    assert f"concord.yaml:{line}" in message and key in message
    assert "not values in the file" in message
    for secret in ("abc123tok", "k-998877", "dXNlcjpwdw==", "sid=abc", "tok-55aa1", "sig-55aa2"):
        assert secret not in message


@pytest.mark.parametrize(
    ("where", "url", "key"),
    [
        ("base", "https://api:pw-7731@erp.example.com", "sources.erp.base_url"),
        ("base", "https://erp.example.com/api?api_key=k-5511", "sources.erp.base_url"),
        ("store", "postgresql://concord:pg-pass-42@db/concord", "store_url"),
        ("store", "${CONCORD_STORE_URL:-postgresql://c:pg-pass-42@db/c}", "store_url"),
    ],
)
def test_a_url_carrying_credentials_is_refused(
    tmp_path: Path, where: str, url: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        load_config(write(tmp_path, **{where: url}))
    assert "pw-7731" not in str(info.value) and "pg-pass-42" not in str(info.value)
    assert "k-5511" not in str(info.value)


def test_harmless_headers_params_and_urls_pass(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            store="postgresql://postgres@127.0.0.1:5432/test",  # a user, no password
            headers="{X-Tenant: acme, Prefer: 'odata.maxpagesize=100', Accept-Language: de}",
            params="{company: CRONUS, $expand: lines, sort_key: id, author: me}",
        )
    )
    assert config.sources["erp"].settings["headers"]["X-Tenant"] == "acme"


def test_a_url_from_the_environment_is_not_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONCORD_STORE_URL", "postgresql://c:from-env-pw@127.0.0.1/c")
    config = load_config(write(tmp_path, store="${CONCORD_STORE_URL}"))
    assert "from-env-pw" in config.store_url  # the environment is where it belongs


def _section(**settings: Any) -> SourceConfig:
    config = SourceConfig.model_validate(
        {
            "type": "rest",
            "base_url": "http://127.0.0.1:1",
            **settings,
            "entities": {"orders": EntityConfig(mapping=Path("m.yaml"), path="/orders")},
        }
    )
    config.name = "erp"
    return config


@pytest.mark.parametrize(
    "settings",
    [
        {"headers": {"Authorization": "Bearer abc123tok"}},
        {"params": {"apikey": "k-998877"}},
        {"headers": {"X-Trace": "Bearer abc123tok"}},
    ],
)
def test_a_source_built_without_the_loader_refuses_them_too(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="holds a credential") as info:
        build_source(_section(**settings))
    assert "abc123tok" not in str(info.value) and "k-998877" not in str(info.value)


def test_what_counts_as_a_secret_name() -> None:
    for name in ("Authorization", "X-API-Key", "Ocp-Apim-Subscription-Key", "api_key", "sig"):
        assert secret_name(name), name
    for name in ("Prefer", "Range", "$filter", "author", "sort_key", "limit", "f"):
        assert not secret_name(name), name
    assert inline_secret("X-Tenant", "acme", parent="headers") is None
    assert inline_secret("url", "http://u@h/") is None
