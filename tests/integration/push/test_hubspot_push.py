"""Pushing customer-360 rows to the HubSpot-like sandbox over loopback: only changes are sent,
persons become contacts, per-record failures are stored and retried, a batch refused whole is
split, 429 is waited out, merges become HubSpot merges, and the dry-run plan is what the push
then does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from concord.contracts import PushRecord, Supersession, Target
from concord.errors import RunFailed
from concord.pipeline.lifecycle import locked_run
from concord.store import Store
from concord.testing import TargetContract
from sandbox.crm import CrmServer
from sandbox.server import Fault
from tests.integration.push.conftest import (
    Pusher,
    customer,
    hubspot_target,
    merge,
    open_rejects,
    push_states,
    seed,
)

UPSERT = "/crm/v3/objects/companies/batch/upsert"


def reject_names(bad: str) -> Any:
    def rule(object_type: str, props: dict[str, Any]) -> str | None:
        return f"name {bad!r} is on the blocklist" if props.get("name") == bad else None

    return rule


def test_unchanged_customers_are_not_sent_again(store: Store, hubspot: CrmServer) -> None:
    seed(store, *(customer(f"K{i:03d}") for i in range(5)))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})

    first = pusher.push("hs")
    assert (first.created, first.accepted, first.rejected) == (5, 5, 0)
    assert len(hubspot.objects["companies"]) == 5

    second = pusher.push("hs")
    assert second.planned == 0 and second.unchanged == 5 and second.calls == 0
    assert hubspot.request_count(UPSERT) == 1


def test_only_the_changed_customer_is_sent_with_its_new_values(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001", revenue="100"), customer("K002"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    seed(store, customer("K001", revenue="250.5"))

    plan = pusher.plan("hs")
    assert [p.key for p in plan.updates] == ["K001"] and not plan.creates
    (change,) = plan.updates[0].changes()
    assert (change.field, change.old, change.new) == ("lifetime_revenue", "100.00", "250.50")

    report = pusher.push("hs")
    assert (report.updated, report.unchanged) == (1, 1)
    assert hubspot.batches[-1]["inputs"][0]["id"] == "K001"
    assert len(hubspot.batches[-1]["inputs"]) == 1
    assert hubspot.objects["companies"]["K001"]["properties"]["lifetime_revenue"] == "250.50"


def test_a_daily_figure_no_mapping_reads_is_skipped_unmapped(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    before = push_states(store, "hs")["K001"]["source_hash"]
    changed = customer("K001")
    changed["days_since_last_order"] = 5  # a daily figure read by neither outbound mapping
    seed(store, changed)

    report = pusher.push("hs")
    assert (report.planned, report.unchanged, report.calls) == (0, 1, 0)
    assert push_states(store, "hs")["K001"]["source_hash"] == before  # not even re-mapped


def test_a_documents_figure_no_mapping_reads_is_mapped_once_and_not_sent(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    before = push_states(store, "hs")["K001"]["source_hash"]
    changed = customer("K001")
    changed["revenue_12m"] = "77"  # read by neither outbound mapping
    seed(store, changed)

    report = pusher.push("hs")
    assert (report.planned, report.unchanged, report.calls) == (0, 1, 0)
    # the row's documents hash moved: mapped again to the same properties, its fingerprint
    # refreshed, so the next night skips it unmapped
    after = push_states(store, "hs")["K001"]["source_hash"]
    assert after is not None and after != before
    assert pusher.push("hs").unchanged == 1
    assert push_states(store, "hs")["K001"]["source_hash"] == after


def test_a_read_field_whose_sent_value_is_the_same_is_not_pushed(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001", email="sales@acme-tools.de"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    before = push_states(store, "hs")["K001"]["source_hash"]
    # read (the contact mapping sends e-mails), but a company sends only the domain: the same
    seed(store, customer("K001", email="info@acme-tools.de"))

    report = pusher.push("hs")
    assert (report.planned, report.unchanged, report.calls) == (0, 1, 0)
    after = push_states(store, "hs")["K001"]["source_hash"]
    assert after is not None and after != before  # next time the row is skipped unmapped
    assert pusher.push("hs").unchanged == 1


def test_a_figure_read_rounded_is_skipped_until_it_moves_at_the_places_sent(
    store: Store, hubspot: CrmServer
) -> None:
    first = customer("K001")
    first["churn_risk"] = 0.1234
    seed(store, first)
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    before = push_states(store, "hs")["K001"]["source_hash"]
    first["churn_risk"] = 0.1236  # sent rounded to 0.12, as before
    seed(store, first)

    report = pusher.push("hs")
    assert (report.planned, report.unchanged, report.calls) == (0, 1, 0)
    assert push_states(store, "hs")["K001"]["source_hash"] == before  # not even re-mapped

    first["churn_risk"] = 0.1251  # now 0.13
    seed(store, first)
    report = pusher.push("hs")
    assert (report.planned, report.accepted) == (1, 1)
    assert hubspot.objects["companies"]["K001"]["properties"]["churn_risk"] == "0.13"


def test_persons_become_contacts_and_companies_stay_companies(
    store: Store, hubspot: CrmServer
) -> None:
    seed(
        store,
        customer("K001", "Acme GmbH"),
        customer("K002", "Jane Doe", email="Jane@Doe.org", is_person=True),
    )
    report = Pusher(store, {"hs": hubspot_target(hubspot)}).push("hs")
    assert report.accepted == 2
    assert list(hubspot.objects["companies"]) == ["K001"]
    contact = hubspot.objects["contacts"]["K002"]["properties"]
    assert (contact["firstname"], contact["lastname"], contact["email"]) == (
        "Jane",
        "Doe",
        "jane@doe.org",
    )
    assert push_states(store, "hs")["K002"]["object_type"] == "person"


def test_per_record_failure_is_stored_with_the_crm_message_and_retried(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001"), customer("K002", "Blocked Ltd"), customer("K003"))
    hubspot.validators.append(reject_names("Blocked Ltd"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})

    first = pusher.push("hs")
    assert (first.accepted, first.rejected, first.calls) == (2, 1, 1)
    state = push_states(store, "hs")["K002"]
    assert state["status"] == "rejected" and state["accepted_hash"] is None
    assert "blocklist" in state["error"] and "VALIDATION_ERROR" in state["error"]
    (reject,) = open_rejects(store)
    assert reject["source_id"] == "K002" and "blocklist" in reject["reason"]

    again = pusher.push("hs")  # still refused: retried, reported, not piled up
    assert (again.planned, again.retried, again.rejected) == (1, 1, 1)
    assert len(open_rejects(store)) == 1
    assert push_states(store, "hs")["K002"]["attempts"] == 2

    hubspot.validators.clear()
    fixed = pusher.push("hs")
    assert (fixed.retried, fixed.retried_accepted, fixed.accepted) == (1, 1, 1)
    assert push_states(store, "hs")["K002"]["status"] == "accepted"
    assert open_rejects(store) == []
    assert set(hubspot.objects["companies"]) == {"K001", "K002", "K003"}


def test_batch_refused_whole_is_split_until_the_bad_record_is_alone(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, *(customer(f"K{i:03d}") for i in range(8)))
    seed(store, customer("K005", "Blocked Ltd"))
    hubspot.validators.append(reject_names("Blocked Ltd"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot, multi_status=False)})

    report = pusher.push("hs")
    assert (report.accepted, report.rejected) == (7, 1)
    assert "K005" not in hubspot.objects["companies"]
    assert len(hubspot.objects["companies"]) == 7
    # 8 -> 4+4 -> 2+2 -> 1+1: one call for the batch, then 2 + 2 + 2 splits
    assert report.calls == hubspot.request_count(UPSERT) == 7
    assert "blocklist" in push_states(store, "hs")["K005"]["error"]


def test_429_with_retry_after_is_waited_out(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001"))
    hubspot.faults.append(Fault(status=429, retry_after=1, path=UPSERT))
    started = time.monotonic()
    report = Pusher(store, {"hs": hubspot_target(hubspot)}).push("hs")
    assert time.monotonic() - started >= 0.9
    assert report.accepted == 1
    assert hubspot.request_count(UPSERT) == 2


def test_per_target_rate_limit_spaces_the_calls(store: Store, hubspot: CrmServer) -> None:
    seed(store, *(customer(f"K{i:03d}") for i in range(4)))
    target = hubspot_target(
        hubspot, batch_size=1, http={"requests_per_second": 5, "backoff_base": 0.01}
    )
    started = time.monotonic()
    report = Pusher(store, {"hs": target}).push("hs")
    assert report.calls == 4
    assert time.monotonic() - started >= 0.55  # 4 calls at 5/s: at least 3 intervals of 0.2 s


def test_merged_customers_are_merged_in_hubspot_never_duplicated(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, customer("K001", "Acme GmbH"), customer("K002", "ACME Gmbh"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    absorbed_id = hubspot.objects["companies"]["K002"]["id"]
    survivor_id = hubspot.objects["companies"]["K001"]["id"]

    merge(store, "K002", "K001")
    report = pusher.push("hs")
    assert report.merged == 1 and report.rejected == 0
    assert list(hubspot.objects["companies"]) == ["K001"]
    assert hubspot.merged == {absorbed_id: survivor_id}
    assert push_states(store, "hs")["K002"]["status"] == "superseded"

    rerun = pusher.push("hs")
    assert rerun.merged == 0 and rerun.calls == 0
    assert len(hubspot.objects["companies"]) == 1


def test_merge_already_done_in_hubspot_is_not_an_error(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001"), customer("K002"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    merge(store, "K002", "K001")
    hubspot.faults.append(
        Fault(status=502, path="/crm/v3/objects/companies/merge", handled=True, times=3)
    )  # merged, but every answer lost
    with pytest.raises(Exception, match=r"502|gave up"):
        pusher.push("hs")
    report = pusher.push("hs")  # the retry finds the merge already done
    assert report.merged == 1 and report.merge_failed == 0
    assert list(hubspot.objects["companies"]) == ["K001"]


def test_merge_of_a_customer_never_pushed_costs_no_call(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001"), customer("K002", "Blocked Ltd"))
    hubspot.validators.append(reject_names("Blocked Ltd"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    merge(store, "K002", "K001")
    plan = pusher.plan("hs")
    assert [m.absorbed for m in plan.merges] == ["K002"] and plan.merge_calls == 0
    report = pusher.push("hs")
    assert report.calls == 0 and report.merged == 0
    assert push_states(store, "hs")["K002"]["status"] == "superseded"
    assert hubspot.request_count("/crm/v3/objects/companies/merge") == 0


def test_dry_run_plan_is_what_the_push_then_does(store: Store, hubspot: CrmServer) -> None:
    seed(store, *(customer(f"K{i:03d}") for i in range(150)))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    seed(
        store,
        *(customer(f"K{i:03d}", revenue="999") for i in range(0, 150, 10)),  # 15 updates
        *(customer(f"N{i:03d}") for i in range(120)),  # 120 creates
        customer("P001", "Jane Doe", email="jane@doe.org", is_person=True),
    )
    merge(store, "K149", "K148")
    merge(store, "K147", "K148")
    requests_before = len(hubspot.requests)

    plan = pusher.plan("hs")
    assert len(hubspot.requests) == requests_before  # a dry run sends nothing
    assert (len(plan.creates), len(plan.updates), len(plan.merges)) == (121, 15, 2)
    assert plan.upsert_calls == 3 and plan.merge_calls == 2  # 135 companies, 1 contact

    report = pusher.push("hs")
    assert report.created == len(plan.creates)
    assert report.updated == len(plan.updates)
    assert report.merged == len(plan.merges)
    assert report.unchanged == plan.unchanged
    writes = [r for r in hubspot.requests[requests_before:] if "/crm/v3/properties/" not in r[1]]
    assert report.calls == plan.api_calls == len(writes)  # the property check is not a write
    sent = {i["id"] for b in hubspot.batches[-3:] for i in b["inputs"]}
    assert sent == {p.key for p in (*plan.creates, *plan.updates)}


def test_rejects_past_the_ratio_fail_the_run(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001"), customer("K002", "Blocked Ltd"))
    hubspot.validators.append(reject_names("Blocked Ltd"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)}, reject_ratio=0.25)
    ctx = pusher.context()
    from concord.pipeline.push import push

    with pytest.raises(RunFailed, match="target hs: 1 of 2 records rejected"):
        locked_run(ctx, lambda: push(ctx, "hs"))


class TestHubSpotTargetContract(TargetContract):
    """The HubSpot target passes the contract every target passes (``concord.testing``);
    a merge merges the absorbed company into the survivor."""

    @pytest.fixture
    def target(self, hubspot: CrmServer) -> Iterator[Target]:  # type: ignore[override]
        hubspot.validators.append(reject_names("Bad"))
        self.server = hubspot
        yield from self.built(hubspot_target(hubspot), "hs")

    def record(self, key: str) -> PushRecord:
        return PushRecord(key, {"name": f"Company {key}"})

    def refused(self, key: str) -> PushRecord:
        return PushRecord(key, {"name": "Bad"})

    def merged_as_documented(self, target: Target, merge: Supersession) -> bool:
        companies = self.server.objects["companies"]
        merged_into = self.server.merged.get(str(merge.absorbed_remote_id))
        return merge.absorbed not in companies and merged_into == merge.survivor_remote_id


@pytest.mark.parametrize("answer", ["echo", "trace", "bare"])
def test_a_2xx_upsert_is_every_input_written_however_results_name_them(
    store: Store, hubspot: CrmServer, answer: str
) -> None:
    hubspot.upsert_answer = answer  # type: ignore[assignment]
    seed(store, *(customer(f"K{i:03d}") for i in range(6)))
    report = Pusher(store, {"hs": hubspot_target(hubspot)}).push("hs")
    assert (report.accepted, report.rejected) == (6, 0)
    states = push_states(store, "hs")
    held = hubspot.objects["companies"]
    assert {k: s["remote_id"] for k, s in states.items()} == {k: o["id"] for k, o in held.items()}
    reads = hubspot.request_count("/crm/v3/objects/companies/batch/read")
    assert reads == (1 if answer == "bare" else 0)  # only unnamed results cost a read


@pytest.mark.parametrize("answer", ["trace", "bare"])
def test_207_errors_are_assigned_through_their_context_and_the_rest_is_written(
    store: Store, hubspot: CrmServer, answer: str
) -> None:
    hubspot.upsert_answer = answer  # type: ignore[assignment]
    seed(store, customer("K001"), customer("K002", "Blocked Ltd"), customer("K003"))
    hubspot.validators.append(reject_names("Blocked Ltd"))
    report = Pusher(store, {"hs": hubspot_target(hubspot)}).push("hs")
    assert (report.accepted, report.rejected) == (2, 1)
    states = push_states(store, "hs")
    assert states["K002"]["status"] == "rejected" and "blocklist" in states["K002"]["error"]
    assert states["K001"]["remote_id"] == hubspot.objects["companies"]["K001"]["id"]


def test_a_batch_too_large_lowers_the_batch_size_for_the_rest_of_the_run(
    store: Store, hubspot: CrmServer
) -> None:
    hubspot.max_batch = 10  # a portal with a smaller limit than the documented 100
    seed(store, *(customer(f"K{i:03d}") for i in range(60)))
    report = Pusher(store, {"hs": hubspot_target(hubspot, batch_size=30)}).push("hs")
    assert report.accepted == 60 and len(hubspot.objects["companies"]) == 60
    sizes = [len(b["inputs"]) for b in hubspot.batches]
    assert sizes == [7, 7, 7, 7, 2] * 2  # 30 and 15 refused once, then every batch pre-split
    assert hubspot.request_count(UPSERT) == 2 + len(sizes)


def test_empty_values_leave_what_hubspot_holds(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001", email="info@acme-tools.de"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    pusher.push("hs")
    held = hubspot.objects["companies"]["K001"]["properties"]
    assert held["domain"] == "acme-tools.de" and "churn_risk" not in held
    seed(store, customer("K001", revenue="200"))  # the e-mail is gone in the ERP
    pusher.push("hs")
    sent = hubspot.batches[-1]["inputs"][0]["properties"]
    assert "domain" not in sent and "" not in sent.values()
    assert hubspot.objects["companies"]["K001"]["properties"]["domain"] == "acme-tools.de"


def test_on_null_clear_sends_empty_strings(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001"))
    Pusher(store, {"hs": hubspot_target(hubspot, on_null="clear")}).push("hs")
    assert hubspot.batches[-1]["inputs"][0]["properties"]["churn_risk"] == ""


def test_a_free_mail_address_gives_no_company_domain(store: Store, hubspot: CrmServer) -> None:
    seed(store, customer("K001", email="jo.hill@gmail.com"))
    Pusher(store, {"hs": hubspot_target(hubspot)}).push("hs")
    assert "domain" not in hubspot.objects["companies"]["K001"]["properties"]
