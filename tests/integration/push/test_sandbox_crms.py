"""The sandbox CRMs answer in HubSpot's and Salesforce's documented shapes: HubSpot's 207
Multi-Status for traced inputs and whole-batch 400 otherwise; Salesforce's per-record results,
allOrNone rollback, whole-request 400 list bodies, 401 INVALID_SESSION_ID and OAuth2 errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.crm import CrmServer
from sandbox.salesforce_crm import SalesforceServer

TIMEOUT = 5
SF_UPSERT = "/services/data/v62.0/composite/sobjects/Account/Concord_Id__c"


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def hs_input(key: str, name: str, traced: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"id": key, "idProperty": "concord_id", "properties": {"name": name}}
    if traced:
        item["objectWriteTraceId"] = key
    return item


def no_bad_names(object_type: str, props: dict[str, Any]) -> str | None:
    return "bad name" if props.get("name") == "Bad" else None


def test_hubspot_traced_batch_with_a_bad_input_answers_207(session: requests.Session) -> None:
    with CrmServer(token="t") as crm:
        crm.validators.append(no_bad_names)
        resp = session.post(
            f"{crm.url}/crm/v3/objects/companies/batch/upsert",
            json={"inputs": [hs_input("G1", "Good", True), hs_input("G2", "Bad", True)]},
            headers={"Authorization": "Bearer t"},
            timeout=TIMEOUT,
        )
        assert resp.status_code == 207
        body = resp.json()
        assert body["numErrors"] == 1 and len(body["results"]) == 1
        (error,) = body["errors"]
        assert error["category"] == "VALIDATION_ERROR"
        assert error["context"] == {"objectWriteTraceId": ["G2"]}
        assert error["errors"][0]["message"] == "bad name"
        assert list(crm.objects["companies"]) == ["G1"]


def test_hubspot_untraced_batch_with_a_bad_input_is_refused_whole(
    session: requests.Session,
) -> None:
    with CrmServer(token="t") as crm:
        crm.validators.append(no_bad_names)
        resp = session.post(
            f"{crm.url}/crm/v3/objects/companies/batch/upsert",
            json={"inputs": [hs_input("G1", "Good", False), hs_input("G2", "Bad", False)]},
            headers={"Authorization": "Bearer t"},
            timeout=TIMEOUT,
        )
        assert resp.status_code == 400
        assert resp.json()["category"] == "VALIDATION_ERROR"
        assert "inputs[1]" in resp.json()["message"]
        assert crm.objects["companies"] == {}


def test_hubspot_unknown_property_and_bad_contact_email_are_refused(
    session: requests.Session,
) -> None:
    with CrmServer(token="t") as crm:
        crm.known_properties = {"companies": {"name", "concord_id"}}
        resp = session.post(
            f"{crm.url}/crm/v3/objects/companies/batch/upsert",
            json={"inputs": [{**hs_input("G1", "x", True), "properties": {"nmae": "x"}}]},
            headers={"Authorization": "Bearer t"},
            timeout=TIMEOUT,
        )
        assert 'Property "nmae" does not exist' in resp.json()["errors"][0]["errors"][0]["message"]
        contact = {**hs_input("P1", "x", True), "properties": {"email": "not-an-email"}}
        resp = session.post(
            f"{crm.url}/crm/v3/objects/contacts/batch/upsert",
            json={"inputs": [contact]},
            headers={"Authorization": "Bearer t"},
            timeout=TIMEOUT,
        )
        assert (
            resp.status_code == 207
            and "invalid" in resp.json()["errors"][0]["errors"][0]["message"]
        )


def sf_token(session: requests.Session, sf: SalesforceServer) -> dict[str, str]:
    resp = session.post(
        f"{sf.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sf.client_id,
            "client_secret": sf.client_secret,
        },
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200 and resp.json()["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def account(key: str, name: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": "Account"}, "Concord_Id__c": key}
    if name is not None:
        record["Name"] = name
    return record


def test_salesforce_per_record_results_in_request_order(session: requests.Session) -> None:
    with SalesforceServer() as sf:
        auth = sf_token(session, sf)
        resp = session.patch(
            sf.url + SF_UPSERT,
            json={"allOrNone": False, "records": [account("K1", "One"), account("K2", None)]},
            headers=auth,
            timeout=TIMEOUT,
        )
        assert resp.status_code == 200
        ok, bad = resp.json()
        assert ok["success"] is True and ok["created"] is True and ok["id"].startswith("001")
        assert bad["success"] is False
        assert bad["errors"] == [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Name]",
                "fields": ["Name"],
            }
        ]
        again = session.patch(
            sf.url + SF_UPSERT,
            json={"records": [account("K1", "One again")]},
            headers=auth,
            timeout=TIMEOUT,
        ).json()
        assert again[0]["created"] is False and again[0]["id"] == ok["id"]


def test_salesforce_all_or_none_rolls_back_every_record(session: requests.Session) -> None:
    with SalesforceServer() as sf:
        resp = session.patch(
            sf.url + SF_UPSERT,
            json={"allOrNone": True, "records": [account("K1", "One"), account("K2", None)]},
            headers=sf_token(session, sf),
            timeout=TIMEOUT,
        )
        codes = [r["errors"][0]["statusCode"] for r in resp.json()]
        assert codes == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING"]
        assert sf.records["Account"] == {}


def test_salesforce_malformed_requests_fail_whole_with_error_lists(
    session: requests.Session,
) -> None:
    with SalesforceServer() as sf:
        auth = sf_token(session, sf)
        too_many = [account(f"K{i}", "x") for i in range(201)]
        resp = session.patch(
            sf.url + SF_UPSERT, json={"records": too_many}, headers=auth, timeout=TIMEOUT
        )
        assert resp.status_code == 400
        assert resp.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
        unknown = session.patch(
            sf.url + SF_UPSERT,
            json={"records": [{**account("K1", "x"), "Nope__c": 1}]},
            headers=auth,
            timeout=TIMEOUT,
        )
        assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
        sf.expire_tokens()
        expired = session.patch(
            sf.url + SF_UPSERT, json={"records": []}, headers=auth, timeout=TIMEOUT
        )
        assert expired.status_code == 401
        assert expired.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]


def test_salesforce_token_endpoint_refuses_a_wrong_secret(session: requests.Session) -> None:
    with SalesforceServer() as sf:
        resp = session.post(
            f"{sf.url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sf.client_id,
                "client_secret": "wrong",
            },
            timeout=TIMEOUT,
        )
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_client"
