"""Integration tests of the HubSpot-like CRM sandbox over loopback HTTP: auth, batch upsert that
creates then updates the same internal id, HubSpot's validation rules (100 inputs, string values,
idProperty), listing with after-paging, merge, and fault injection before and after handling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox import CrmServer, Fault

TOKEN = "sandbox-crm-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 5


@pytest.fixture
def crm() -> Iterator[CrmServer]:
    with CrmServer() as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(AUTH)
        yield s


def company(concord_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "id": concord_id,
        "idProperty": "concord_id",
        "properties": {"name": f"Company {concord_id}", **properties},
    }


def upsert(
    session: requests.Session, crm: CrmServer, inputs: list[dict[str, Any]], kind: str = "companies"
) -> requests.Response:
    return session.post(
        f"{crm.url}/crm/v3/objects/{kind}/batch/upsert", json={"inputs": inputs}, timeout=TIMEOUT
    )


def test_requests_without_the_bearer_token_are_unauthorized(crm: CrmServer) -> None:
    response = requests.post(
        f"{crm.url}/crm/v3/objects/companies/batch/upsert",
        json={"inputs": [company("G-1")]},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"
    assert crm.objects["companies"] == {}


def test_upsert_creates_then_updates_the_same_internal_id(
    crm: CrmServer, session: requests.Session
) -> None:
    created = upsert(session, crm, [company("G-1", domain="acme.de")])
    assert created.status_code == 200
    body = created.json()
    assert body["status"] == "COMPLETE"
    (first,) = body["results"]
    assert first["new"] is True
    assert first["properties"]["concord_id"] == "G-1"

    updated = upsert(session, crm, [company("G-1", name="Acme GmbH")]).json()
    (second,) = updated["results"]
    assert second["new"] is False
    assert second["id"] == first["id"]
    assert second["properties"] == {"name": "Acme GmbH", "domain": "acme.de", "concord_id": "G-1"}
    assert crm.objects["companies"]["G-1"]["id"] == first["id"]
    assert len(crm.objects["companies"]) == 1
    assert len(crm.batches) == 2


def test_companies_and_contacts_are_separate(crm: CrmServer, session: requests.Session) -> None:
    upsert(session, crm, [company("G-1")])
    upsert(session, crm, [company("G-1", email="a@b.de")], kind="contacts")
    assert crm.objects["companies"]["G-1"]["id"] != crm.objects["contacts"]["G-1"]["id"]
    missing = upsert(session, crm, [company("G-1")], kind="deals")
    assert missing.status_code == 404


def test_more_than_100_inputs_are_rejected(crm: CrmServer, session: requests.Session) -> None:
    assert upsert(session, crm, [company(f"G-{i}") for i in range(100)]).status_code == 200
    response = upsert(session, crm, [company(f"H-{i}") for i in range(101)])
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert "100" in body["message"]
    assert len(crm.objects["companies"]) == 100


@pytest.mark.parametrize("value", [12, 1.5, None, True, ["x"]])
def test_non_string_property_is_rejected_naming_input_and_property(
    crm: CrmServer, session: requests.Session, value: Any
) -> None:
    inputs = [company("G-1"), company("G-2", annualrevenue=value)]
    response = upsert(session, crm, inputs)
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert "inputs[1]" in body["message"]
    assert "annualrevenue" in body["message"]
    assert crm.objects["companies"] == {}  # the whole batch is refused
    assert crm.batches == []


@pytest.mark.parametrize(
    "bad_input",
    [
        {"id": "G-1", "properties": {"name": "x"}},
        {"id": "", "idProperty": "concord_id", "properties": {}},
        {"id": "G-1", "idProperty": "concord_id"},
    ],
)
def test_incomplete_inputs_are_rejected(
    crm: CrmServer, session: requests.Session, bad_input: dict[str, Any]
) -> None:
    response = upsert(session, crm, [bad_input])
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_duplicate_ids_in_one_batch_are_rejected(crm: CrmServer, session: requests.Session) -> None:
    response = upsert(session, crm, [company("G-1"), company("G-1")])
    assert response.status_code == 400
    assert "duplicate" in response.json()["message"]


def test_body_that_is_not_json_is_rejected(crm: CrmServer, session: requests.Session) -> None:
    response = session.post(
        f"{crm.url}/crm/v3/objects/companies/batch/upsert", data=b"{not json", timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"


def test_listing_pages_with_after(crm: CrmServer, session: requests.Session) -> None:
    upsert(session, crm, [company(f"G-{i:03d}") for i in range(25)])
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if after is not None:
            params["after"] = after
        body = session.get(
            f"{crm.url}/crm/v3/objects/companies", params=params, timeout=TIMEOUT
        ).json()
        seen.extend(r["properties"]["concord_id"] for r in body["results"])
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    assert seen == [f"G-{i:03d}" for i in range(25)]


def test_read_one_by_internal_id_or_id_property(crm: CrmServer, session: requests.Session) -> None:
    (result,) = upsert(session, crm, [company("G-7")]).json()["results"]
    base = f"{crm.url}/crm/v3/objects/companies"
    by_internal = session.get(f"{base}/{result['id']}", timeout=TIMEOUT).json()
    by_concord = session.get(
        f"{base}/G-7", params={"idProperty": "concord_id"}, timeout=TIMEOUT
    ).json()
    assert by_internal["id"] == by_concord["id"] == result["id"]
    missing = session.get(f"{base}/999999", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_merge_removes_the_merged_object_and_redirects_its_id(
    crm: CrmServer, session: requests.Session
) -> None:
    results = upsert(
        session, crm, [company("G-1", phone="+49 30 1"), company("G-2", domain="acme.de")]
    ).json()["results"]
    primary, merged = results[0]["id"], results[1]["id"]
    response = session.post(
        f"{crm.url}/crm/v3/objects/companies/merge",
        json={"primaryObjectId": primary, "objectIdToMerge": merged},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["id"] == primary
    assert response.json()["properties"]["domain"] == "acme.de"  # filled from the merged one
    assert list(crm.objects["companies"]) == ["G-1"]
    assert crm.merged == {merged: primary}
    (again,) = upsert(session, crm, [company("G-2", name="Acme")]).json()["results"]
    assert again["id"] == primary
    assert len(crm.objects["companies"]) == 1


def test_server_error_then_success(crm: CrmServer, session: requests.Session) -> None:
    crm.faults.append(Fault(status=500, times=1))
    assert upsert(session, crm, [company("G-1")]).status_code == 500
    assert crm.objects["companies"] == {}
    assert upsert(session, crm, [company("G-1")]).status_code == 200
    assert crm.request_count("/crm/v3/objects/companies/batch/upsert", method="POST") == 2


def test_rate_limit_fault(crm: CrmServer, session: requests.Session) -> None:
    crm.faults.append(Fault(status=429, retry_after=2))
    response = upsert(session, crm, [company("G-1")])
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["category"] == "RATE_LIMITS"


def test_lost_response_after_handling_then_retry_does_not_duplicate(
    crm: CrmServer, session: requests.Session
) -> None:
    crm.faults.append(Fault(kind="reset", handled=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        upsert(session, crm, [company("G-1")])
    internal = crm.objects["companies"]["G-1"]["id"]  # applied although the answer was lost
    (retry,) = upsert(session, crm, [company("G-1")]).json()["results"]
    assert retry["new"] is False
    assert retry["id"] == internal
