"""The receivable gate: a push is held while concord's open balances disagree with the ERPs'."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from concord.errors import PushHeld
from concord.pipeline.context import RunContext, RunOptions, load_mappings, new_run_id
from concord.pipeline.push import push
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from tests.integration.push.conftest import Pusher, customer, hubspot_target, seed


def with_difference(gid: str, difference: str | None) -> dict[str, Any]:
    row = customer(gid)
    row["erp_receivable"] = "100.00"
    row["erp_receivable_difference"] = difference
    return row


def context(pusher: Pusher, tolerance: str | None, **options: Any) -> RunContext:
    cfg = pusher.config()
    cfg.push_gate.receivable_tolerance = None if tolerance is None else Decimal(tolerance)
    run = RunOptions(run_id=new_run_id(), **options)
    return RunContext(cfg, pusher.store, run.run_id or "", run, load_mappings(cfg))


def reported(store: Store, run_id: str) -> dict[str, Any]:
    sr = t.stage_reports
    with store.engine.connect() as conn:
        status, body = conn.execute(
            select(sr.c.status, sr.c.report).where(sr.c.run_id == run_id, sr.c.stage == "push")
        ).one()
    return {"status": status, **body}


def test_the_push_is_held_when_the_total_difference_is_above_the_tolerance(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, with_difference("K001", "7.50"), with_difference("K002", "-2.00"), customer("K003"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    held = context(pusher, "5.00")
    with pytest.raises(PushHeld, match=r"differs .* by 5.50 in total over 2 customers"):
        push(held, "hs")
    assert hubspot.objects.get("companies", {}) == {}
    body = reported(store, held.run_id)
    assert body["status"] == "failed" and "push held" in body["held"]


def test_a_dry_run_says_the_push_would_be_held(store: Store, hubspot: CrmServer) -> None:
    seed(store, with_difference("K001", "7.50"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    report = push(context(pusher, "1", dry_run=True), "hs")
    assert report.dry_run and report.held is not None and "7.50" in report.held


def test_push_anyway_sends_and_a_difference_within_tolerance_is_not_held(
    store: Store, hubspot: CrmServer
) -> None:
    seed(store, with_difference("K001", "7.50"), with_difference("K002", "0.40"))
    pusher = Pusher(store, {"hs": hubspot_target(hubspot)})
    forced = push(context(pusher, "5.00", push_anyway=True), "hs")
    assert forced.accepted == 2 and forced.held is None
    seed(store, with_difference("K001", "0.30"), with_difference("K002", "0.40"))
    within = push(context(pusher, "1.00"), "hs")
    assert within.held is None and within.unchanged == 2
    never = push(context(pusher, None), "hs")  # no tolerance configured
    assert never.held is None
