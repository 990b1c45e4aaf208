"""Each auth style adds what it should to a request; OAuth2 caches, refreshes and reports."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter

from concord.errors import SourceError
from connectors.auth import AuthConfig, OAuth2ClientCredentials

ADAPTER: TypeAdapter[Any] = TypeAdapter(AuthConfig)


def prepared(url: str = "http://erp.test/api/x?page=2") -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_SECRET", "s3cret-value")


def build(section: dict[str, Any], session: requests.Session | None = None) -> Any:
    return ADAPTER.validate_python(section).build(session or requests.Session(), 5.0)


def test_none_adds_nothing() -> None:
    assert build({"type": "none"}) is None


def test_bearer_sets_the_authorization_header() -> None:
    req = build({"type": "bearer", "token": {"env": "ERP_SECRET"}})(prepared())
    assert req.headers["Authorization"] == "Bearer s3cret-value"


def test_basic_encodes_user_and_password() -> None:
    req = build({"type": "basic", "username": "api", "password": {"env": "ERP_SECRET"}})(prepared())
    assert req.headers["Authorization"].startswith("Basic ")


def test_api_key_in_a_header_or_the_query() -> None:
    header = build({"type": "api_key", "key": {"env": "ERP_SECRET"}, "name": "X-Key"})(prepared())
    assert header.headers["X-Key"] == "s3cret-value"
    query = build(
        {"type": "api_key", "key": {"env": "ERP_SECRET"}, "name": "apikey", "location": "query"}
    )(prepared())
    assert query.url is not None and "apikey=s3cret-value" in query.url and "page=2" in query.url


def test_an_inline_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        ADAPTER.validate_python({"type": "bearer", "token": "plain-text"})


class FakeTokenSession(requests.Session):
    """Answers token requests from a script; records what was posted (unit test of one class)."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        super().__init__()
        self.answers = answers
        self.posted: list[dict[str, Any]] = []

    def post(self, url: Any, data: Any = None, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.posted.append(dict(data))
        status, body = self.answers.pop(0)
        resp = requests.Response()
        resp.status_code = status
        resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return resp


def oauth(session: FakeTokenSession, **extra: Any) -> Any:
    cfg = OAuth2ClientCredentials(
        type="oauth2_client_credentials",
        token_url="https://login.example.com/t/oauth2/v2.0/token",
        client_id="app",
        client_secret={"env": "ERP_SECRET"},  # type: ignore[arg-type]
        scope="api://erp/.default",
        **extra,
    )
    return cfg.build(session, 5.0)


def test_oauth2_fetches_once_and_reuses_the_token() -> None:
    session = FakeTokenSession([(200, {"access_token": "tok-1", "expires_in": 3600})])
    auth = oauth(session)
    assert auth(prepared()).headers["Authorization"] == "Bearer tok-1"
    assert auth(prepared()).headers["Authorization"] == "Bearer tok-1"
    assert session.posted == [
        {
            "grant_type": "client_credentials",
            "client_id": "app",
            "client_secret": "s3cret-value",
            "scope": "api://erp/.default",
        }
    ]


def test_oauth2_refreshes_inside_the_margin_before_expiry() -> None:
    session = FakeTokenSession(
        [
            (200, {"access_token": "tok-1", "expires_in": 600}),
            (200, {"access_token": "tok-2", "expires_in": 600}),
        ]
    )
    auth = oauth(session, refresh_margin_seconds=60)
    now = [0.0]
    auth.clock = lambda: now[0]
    assert auth.token() == "tok-1"
    now[0] = 539.0
    assert auth.token() == "tok-1"
    now[0] = 541.0  # 59 s before expiry: refreshed early
    assert auth.token() == "tok-2"


def test_oauth2_invalidate_forces_a_new_token() -> None:
    session = FakeTokenSession([(200, {"access_token": "tok-1"}), (200, {"access_token": "tok-2"})])
    auth = oauth(session)
    assert auth.token() == "tok-1"
    auth.invalidate()
    assert auth.token() == "tok-2"


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ((401, {"error": "invalid_client"}), r"HTTP 401.*refused \(invalid_client\)"),
        ((200, {"token_type": "Bearer"}), "no access_token"),
        ((200, b"<html>proxy</html>"), "no access_token"),
    ],
)
def test_oauth2_failures_name_the_source_and_token_url(answer: tuple[int, Any], match: str) -> None:
    auth = oauth(FakeTokenSession([answer]))
    auth.owner = "erp"
    with pytest.raises(SourceError, match=match) as info:
        auth.token()
    assert "source 'erp'" in str(info.value)
    assert "login.example.com" in str(info.value)
    assert "s3cret-value" not in str(info.value)
