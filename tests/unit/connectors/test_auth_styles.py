"""Each auth style adds what it should to a request; OAuth2 caches, refreshes and reports, naming
the side it serves (a source's token error is the source's, a target's the target's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from pydantic import TypeAdapter

from concord.errors import PushError, SourceError
from connectors.http import AuthConfig, HttpSettings, OAuth2ClientCredentials, Side
from sandbox.server import LoopbackServer, Request, Response

ADAPTER: TypeAdapter[Any] = TypeAdapter(AuthConfig)
SETTINGS = HttpSettings(backoff_base=0.0, max_attempts=2, timeout=5)
ERP = Side.source("erp")


def prepared(url: str = "http://erp.test/api/x?page=2") -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_SECRET", "s3cret-value")


def build(section: dict[str, Any], side: Side = ERP) -> Any:
    return ADAPTER.validate_python(section).build(side, SETTINGS)


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


class TokenEndpoint(LoopbackServer):
    """Answers token requests from a script and records the forms posted."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        self.answers = answers
        self.posted: list[dict[str, str]] = []
        super().__init__()

    def handle(self, request: Request) -> Response:
        self.posted.append(dict(parse_qsl(request.body.decode())))
        status, body = self.answers.pop(0)
        return Response(status, body)


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[TokenEndpoint]:
    with TokenEndpoint(list(request.param)) as server:
        yield server


def oauth(url: str, side: Side = ERP, **extra: Any) -> Any:
    cfg = OAuth2ClientCredentials(
        type="oauth2_client_credentials",
        token_url=f"{url}/t/oauth2/v2.0/token",
        client_id="app",
        client_secret={"env": "ERP_SECRET"},  # type: ignore[arg-type]
        scope="api://erp/.default",
        **extra,
    )
    return cfg.build(side, SETTINGS)


@pytest.mark.parametrize(
    "endpoint", [[(200, {"access_token": "tok-1", "expires_in": 3600})]], indirect=True
)
def test_oauth2_fetches_once_and_reuses_the_token(endpoint: TokenEndpoint) -> None:
    auth = oauth(endpoint.url)
    assert auth(prepared()).headers["Authorization"] == "Bearer tok-1"
    assert auth(prepared()).headers["Authorization"] == "Bearer tok-1"
    assert endpoint.posted == [
        {
            "grant_type": "client_credentials",
            "client_id": "app",
            "client_secret": "s3cret-value",
            "scope": "api://erp/.default",
        }
    ]


@pytest.mark.parametrize(
    "endpoint",
    [[(200, {"access_token": "tok-1", "expires_in": 600}), (200, {"access_token": "tok-2"})]],
    indirect=True,
)
def test_oauth2_refreshes_inside_the_margin_before_expiry(endpoint: TokenEndpoint) -> None:
    auth = oauth(endpoint.url, refresh_margin_seconds=60)
    now = [0.0]
    auth.cache.clock = lambda: now[0]
    assert auth.cache.token() == "tok-1"
    now[0] = 539.0
    assert auth.cache.token() == "tok-1"
    now[0] = 541.0  # 59 s before expiry: refreshed early
    assert auth.cache.token() == "tok-2"


@pytest.mark.parametrize(
    "endpoint",
    [[(503, {"error": "busy"}), (200, {"access_token": "tok-1"})]],
    indirect=True,
)
def test_a_token_endpoint_that_is_busy_is_retried_by_the_kit(endpoint: TokenEndpoint) -> None:
    assert oauth(endpoint.url).cache.token() == "tok-1"
    assert len(endpoint.posted) == 2


@pytest.mark.parametrize(
    ("endpoint", "match"),
    [
        ([(401, {"error": "invalid_client"})], r"HTTP 401.*refused \(invalid_client\)"),
        ([(200, {"token_type": "Bearer"})], "no access_token"),
        ([(200, "<html>proxy</html>")], "no access_token"),
    ],
    indirect=["endpoint"],
)
def test_oauth2_failures_name_the_source_and_token_url(endpoint: TokenEndpoint, match: str) -> None:
    with pytest.raises(SourceError, match=match) as info:
        oauth(endpoint.url).cache.token()
    assert "source 'erp'" in str(info.value)
    assert endpoint.url.split("//")[1] in str(info.value)
    assert "s3cret-value" not in str(info.value)
    assert info.value.auth and not info.value.retriable


@pytest.mark.parametrize("endpoint", [[(400, {"error": "invalid_grant"})]], indirect=True)
def test_a_targets_token_error_names_the_target_not_a_source(endpoint: TokenEndpoint) -> None:
    with pytest.raises(PushError, match=r"^target 'crm'.*refused \(invalid_grant\)") as info:
        oauth(endpoint.url, side=Side.target("crm")).cache.token()
    assert info.value.auth and "source" not in str(info.value)
