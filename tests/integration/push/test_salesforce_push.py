"""Pushing to the Salesforce-like sandbox over loopback: Accounts upserted by external id 200 to a
call with per-record results (partial success), a request refused whole is split, tokens come
from client credentials or a JWT assertion and are renewed after a 401, and merged customers are
marked superseded or deleted, never left as a live duplicate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from concord.contracts import PushRecord, Supersession, Target
from concord.errors import PushError
from concord.store import Store
from concord.testing import TargetContract
from connectors.crm.salesforce import SalesforceSettings, SalesforceTarget
from sandbox.salesforce_crm import SalesforceServer
from tests.integration.push.conftest import (
    FAST_HTTP,
    Pusher,
    customer,
    merge,
    open_rejects,
    push_states,
    salesforce_target,
    seed,
)

UPSERT = "/services/data/v62.0/composite/sobjects/Account/Concord_Id__c"


def blocklist(name: str) -> Any:
    def rule(sobject: str, fields: dict[str, Any]) -> str | None:
        return f"{name} may not be a customer" if fields.get("Name") == name else None

    return rule


def test_accounts_are_upserted_by_external_id_200_to_a_call(
    store: Store, salesforce: SalesforceServer
) -> None:
    seed(store, *(customer(f"K{i:03d}", revenue="12.5") for i in range(250)))
    pusher = Pusher(store, {"sf": salesforce_target(salesforce)})
    report = pusher.push("sf")
    assert (report.created, report.calls) == (250, 2)
    assert salesforce.request_count(UPSERT, "PATCH") == 2
    account = salesforce.records["Account"]["K007"]
    assert account["Name"] == "Company K007" and account["Lifetime_Revenue__c"] == 12.5
    assert push_states(store, "sf")["K007"]["remote_id"] == account["Id"]
    assert pusher.push("sf").calls == 0


def test_partial_success_keeps_the_good_records_and_stores_salesforce_errors(
    store: Store, salesforce: SalesforceServer
) -> None:
    seed(store, customer("K001"), customer("K002", "Evil Corp"), customer("K003"))
    salesforce.validators.append(blocklist("Evil Corp"))
    pusher = Pusher(store, {"sf": salesforce_target(salesforce)})
    report = pusher.push("sf")
    assert (report.accepted, report.rejected, report.calls) == (2, 1, 1)
    assert set(salesforce.records["Account"]) == {"K001", "K003"}
    error = push_states(store, "sf")["K002"]["error"]
    assert error == "FIELD_CUSTOM_VALIDATION_EXCEPTION: Evil Corp may not be a customer"
    assert [r["source_id"] for r in open_rejects(store)] == ["K002"]

    salesforce.validators.clear()
    retry = pusher.push("sf")
    assert (retry.retried, retry.retried_accepted) == (1, 1)
    assert open_rejects(store) == []


def test_request_refused_whole_is_split_to_the_bad_record(salesforce: SalesforceServer) -> None:
    settings = SalesforceSettings.model_validate(
        {
            "instance_url": salesforce.url,
            "auth": salesforce_target(salesforce)["auth"],
            "http": FAST_HTTP,
        }
    )
    target = SalesforceTarget("sf", settings)
    records = [PushRecord(f"K{i}", {"Name": f"Company {i}"}) for i in range(4)]
    records[2] = PushRecord("K2", {"Name": "Company 2", "Bogus__c": "x"})  # no such field
    try:
        outcomes = target.push(records)
    finally:
        target.close()
    assert [o.ok for o in outcomes] == [True, True, False, True]
    assert outcomes[2].error is not None
    assert "INVALID_FIELD" in outcomes[2].error and "Bogus__c" in outcomes[2].error
    assert target.calls == 1 + 2 + 2  # whole, halves, quarters of the bad half


def test_jwt_bearer_token_is_used_and_renewed_after_session_expiry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.setenv("TEST_SF_KEY", pem)
    with SalesforceServer(jwt_public_key=public) as sf:
        target_cfg = salesforce_target(sf)
        target_cfg["auth"] = {
            "type": "salesforce_jwt_bearer",
            "login_url": sf.url,
            "client_id": sf.client_id,
            "username": sf.username,
            "private_key": {"env": "TEST_SF_KEY"},
        }
        seed(store, customer("K001"))
        assert Pusher(store, {"sf": target_cfg}).push("sf").accepted == 1
        assert sf.tokens_issued == 1

        settings = SalesforceSettings.model_validate(
            {k: v for k, v in target_cfg.items() if k not in ("type", "mapping")}
        )
        target = SalesforceTarget("sf", settings)
        try:
            assert target.push([PushRecord("K002", {"Name": "Two"})])[0].ok
            sf.expire_tokens()  # the org's session timed out mid-run
            assert target.push([PushRecord("K003", {"Name": "Three"})])[0].ok
        finally:
            target.close()
        assert sf.tokens_issued == 3  # the first push, this target, the renewal after the 401
        assert set(sf.records["Account"]) == {"K001", "K002", "K003"}


def test_refused_client_credentials_name_the_flow_not_the_secret(
    store: Store, salesforce: SalesforceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SF_SECRET", "wrong-secret-value")
    seed(store, customer("K001"))
    with pytest.raises(PushError) as caught:
        Pusher(store, {"sf": salesforce_target(salesforce)}).push("sf")
    assert "client-credentials token request refused (invalid_client)" in caught.value.message
    assert "wrong-secret-value" not in caught.value.message


def test_merged_customer_is_marked_superseded(store: Store, salesforce: SalesforceServer) -> None:
    seed(store, customer("K001"), customer("K002"))
    pusher = Pusher(store, {"sf": salesforce_target(salesforce)})
    pusher.push("sf")
    merge(store, "K002", "K001")
    plan = pusher.plan("sf")
    assert plan.merge_action == "mark" and plan.merge_calls == 1
    report = pusher.push("sf")
    assert report.merged == 1 and report.calls == 1
    assert salesforce.records["Account"]["K002"]["Superseded_By__c"] == "K001"
    assert push_states(store, "sf")["K002"]["status"] == "superseded"
    assert pusher.push("sf").calls == 0


def test_merged_customer_is_deleted_when_configured(
    store: Store, salesforce: SalesforceServer
) -> None:
    seed(store, customer("K001"), customer("K002"), customer("K003"))
    pusher = Pusher(store, {"sf": salesforce_target(salesforce, merge_mode="delete")})
    pusher.push("sf")
    gone = {salesforce.records["Account"][k]["Id"] for k in ("K002", "K003")}
    merge(store, "K002", "K001")
    merge(store, "K003", "K002")  # a chain: K003 -> K002 -> K001
    report = pusher.push("sf")
    assert report.merged == 2 and report.calls == 1
    assert set(salesforce.records["Account"]) == {"K001"}
    assert salesforce.deleted == gone


class TestSalesforceTargetContract(TargetContract):
    """The Salesforce target passes the contract every target passes (``concord.testing``);
    a merge marks the absorbed Account with its survivor (``merge_mode: mark``)."""

    @pytest.fixture
    def target(self, salesforce: SalesforceServer) -> Iterator[Target]:  # type: ignore[override]
        self.server = salesforce
        yield from self.built(salesforce_target(salesforce), "sf")

    def record(self, key: str) -> PushRecord:
        return PushRecord(key, {"Name": f"Company {key}"})

    def refused(self, key: str) -> PushRecord:
        return PushRecord(key, {"Name": "Bad", "Bogus__c": "x"})  # no such field

    def merged_as_documented(self, target: Target, merge: Supersession) -> bool:
        account = self.server.records["Account"].get(merge.absorbed) or {}
        return account.get("Superseded_By__c") == merge.survivor
