"""The generic REST target against a small JSON batch API on loopback: per-record results are
read back, a bare-array API without results accepts on 2xx, a batch refused whole is split,
merges are marked or deleted; and HubSpot's OAuth2 refresh-token grant feeds the bearer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from concord.contracts import PushRecord, Supersession, Target
from concord.store import Store
from concord.testing import TargetContract
from sandbox.crm import CrmServer
from sandbox.server import ApiError, LoopbackServer, Request, Response
from tests.integration.push.conftest import (
    FAST_HTTP,
    Pusher,
    customer,
    hubspot_target,
    merge,
    push_states,
    seed,
)


class CustomerApi(LoopbackServer):
    """A JSON API: POST /customers/batch {records:[...]} -> {results:[{id, ok, error}]}; a record
    named "Bad" fails alone, one named "Poison" makes the whole batch a 400; GET
    /customers?ids=a,b lists records; DELETE /customers/{id}; POST /bare takes a bare array and
    answers 204."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        super().__init__(token="rest-token")

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/customers/batch":
            records = request.json()["records"]
            if any(r.get("name") == "Poison" for r in records):
                raise ApiError(400, "batch contains an invalid record")
            results = []
            for r in records:
                if r.get("name") == "Bad":
                    results.append({"id": r["id"], "ok": False, "error": "name is not allowed"})
                    continue
                self.rows.setdefault(r["id"], {}).update(r)
                results.append({"id": r["id"], "ok": True, "ref": f"R-{r['id']}"})
            return Response(200, {"results": results})
        if request.method == "GET" and request.path == "/customers":
            wanted = set(filter(None, request.query.get("ids", "").split(",")))
            listed = [r for k, r in sorted(self.rows.items()) if k in wanted]
            return Response(200, {"results": listed})
        if request.method == "POST" and request.path == "/bare":
            for r in request.json():
                self.rows[r["key"]] = r
            return Response(204)
        if request.method == "DELETE" and request.path.startswith("/customers/"):
            key = request.path.rsplit("/", 1)[1]
            if self.rows.pop(key, None) is None:
                raise ApiError(404, "no such customer")
            self.deleted.append(key)
            return Response(204)
        raise ApiError(404, "not found")


@pytest.fixture
def api() -> Iterator[CustomerApi]:
    with CustomerApi() as server:
        yield server


def rest_target(api: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rest",
        "base_url": api.url,
        "auth": {"type": "bearer", "token": {"env": "TEST_REST_TOKEN"}},
        "mapping": "mappings/crm/sandbox_crm.yaml",
        "result_remote_id_field": "ref",
        "http": FAST_HTTP,
        **extra,
    }


@pytest.fixture(autouse=True)
def _rest_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_REST_TOKEN", "rest-token")


def test_per_record_results_are_read_back(store: Store, api: CustomerApi) -> None:
    seed(store, customer("K001"), customer("K002", "Bad"), customer("K003"))
    report = Pusher(store, {"api": rest_target(api)}).push("api")
    assert (report.accepted, report.rejected, report.calls) == (2, 1, 1)
    states = push_states(store, "api")
    assert states["K001"]["remote_id"] == "R-K001"
    assert states["K002"]["error"] == "name is not allowed"
    assert set(api.rows) == {"K001", "K003"}


def test_batch_refused_whole_is_split(store: Store, api: CustomerApi) -> None:
    seed(store, *(customer(f"K{i:03d}") for i in range(4)), customer("K009", "Poison"))
    report = Pusher(store, {"api": rest_target(api)}).push("api")
    assert (report.accepted, report.rejected) == (4, 1)
    assert "invalid record" in push_states(store, "api")["K009"]["error"]


def test_bare_array_without_results_accepts_on_2xx(store: Store, api: CustomerApi) -> None:
    seed(store, customer("K001"), customer("K002"))
    target = rest_target(api, path="/bare", records_key=None, results_path=None, key_field="key")
    report = Pusher(store, {"api": target}).push("api")
    assert report.accepted == 2
    assert api.rows["K001"]["name"] == "Company K001"


def test_merges_are_marked_or_deleted(store: Store, api: CustomerApi) -> None:
    seed(store, customer("K001"), customer("K002"), customer("K003"))
    marking = Pusher(store, {"api": rest_target(api)})
    marking.push("api")
    merge(store, "K002", "K001")
    assert marking.push("api").merged == 1
    assert api.rows["K002"]["superseded_by"] == "K001"

    merge(store, "K003", "K001")
    deleting = Pusher(store, {"api": rest_target(api, merge_mode="delete")})
    plan = deleting.plan("api")
    assert [m.absorbed for m in plan.merges] == ["K003"] and plan.merge_calls == 1
    assert deleting.push("api").merged == 1
    assert api.deleted == ["K003"]
    assert push_states(store, "api")["K003"]["status"] == "superseded"


class TokenServer(LoopbackServer):
    """An OAuth2 token endpoint for the refresh-token grant."""

    def __init__(self) -> None:
        self.grants: list[dict[str, str]] = []
        super().__init__(token=None)

    def handle(self, request: Request) -> Response:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(request.body.decode()))
        self.grants.append(form)
        if form.get("refresh_token") != "refresh-me" or form.get("client_secret") != "shh":
            return Response(400, {"error": "invalid_grant"})
        return Response(200, {"access_token": "hubspot-test-token", "expires_in": 1800})


def test_hubspot_refresh_token_grant_feeds_the_bearer(
    store: Store, hubspot: CrmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HS_CLIENT_SECRET", "shh")
    monkeypatch.setenv("HS_REFRESH", "refresh-me")
    seed(store, customer("K001"), customer("K002"))
    with TokenServer() as tokens:
        target = hubspot_target(
            hubspot,
            batch_size=1,
            auth={
                "type": "oauth2_refresh_token",
                "token_url": f"{tokens.url}/oauth/v1/token",
                "client_id": "app",
                "client_secret": {"env": "HS_CLIENT_SECRET"},
                "refresh_token": {"env": "HS_REFRESH"},
            },
        )
        report = Pusher(store, {"hs": target}).push("hs")
    assert report.accepted == 2 and report.calls == 2
    assert [g["grant_type"] for g in tokens.grants] == ["refresh_token"]  # one token, two calls


class TestRestTargetContract(TargetContract):
    """The generic REST target passes the contract every target passes (``concord.testing``);
    a merge marks the absorbed record with its survivor (``merge_mode: mark``)."""

    @pytest.fixture
    def target(self, api: CustomerApi) -> Iterator[Target]:  # type: ignore[override]
        self.server = api
        yield from self.built(rest_target(api, list_path="/customers"), "rest")

    def record(self, key: str) -> PushRecord:
        return PushRecord(key, {"name": f"Company {key}"})

    def refused(self, key: str) -> PushRecord:
        return PushRecord(key, {"name": "Bad"})

    def merged_as_documented(self, target: Target, merge: Supersession) -> bool:
        return self.server.rows[merge.absorbed].get("superseded_by") == merge.survivor
