"""Unit tests of the push plan's parts: field diffs, create vs update, the content hash, merge
chains, and the rendering of a plan with old and new values."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console

from concord.cli.render import render_plan
from concord.contracts import Supersession
from concord.push.diff import PlannedUpsert, content_hash, json_form
from concord.push.merges import final_survivor
from concord.push.plan import PushPlan


def planned(
    properties: dict[str, object],
    previous: dict[str, object] | None = None,
    prior_status: str | None = None,
) -> PlannedUpsert:
    return PlannedUpsert(
        key="K1",
        object_type="company",
        properties=dict(properties),
        hash=content_hash("company", dict(properties)),
        remote_id=None,
        previous=previous,
        prior_hash=None if previous is None else "old",
        prior_status=prior_status,
        prior_attempts=0,
    )


def test_changes_list_only_the_fields_that_differ() -> None:
    p = planned(
        {"name": "Acme", "tier": "A", "revenue": Decimal("10.50")},
        previous={"name": "Acme", "tier": "B", "phone": "1"},
    )
    changes = [(c.field, c.old, c.new) for c in p.changes()]
    assert changes == [("phone", "1", None), ("revenue", None, "10.50"), ("tier", "B", "A")]


def test_never_accepted_or_superseded_is_a_create_otherwise_an_update() -> None:
    assert planned({"a": "1"}).action == "create"
    assert planned({"a": "1"}, previous={"a": "0"}).action == "update"
    assert planned({"a": "1"}, previous={"a": "0"}, prior_status="superseded").action == "create"
    assert planned({"a": "1"}, previous={"a": "0"}, prior_status="rejected").retry


def test_content_hash_ignores_key_order_but_not_the_object_kind() -> None:
    assert content_hash("company", {"a": "1", "b": "2"}) == content_hash(
        "company", {"b": "2", "a": "1"}
    )
    assert content_hash("company", {"a": "1"}) != content_hash("person", {"a": "1"})
    assert content_hash("company", {"a": "1"}) != content_hash("company", {"a": "2"})


def test_json_form_keeps_decimals_exact_as_text() -> None:
    assert json_form({"x": Decimal("0.10"), "n": 3}) == {"x": "0.10", "n": 3}


def test_merge_chain_resolves_to_the_final_survivor() -> None:
    chain = {"A": "B", "B": "C", "X": "Y"}
    assert final_survivor(chain, "A") == "C"
    assert final_survivor(chain, "X") == "Y"
    assert final_survivor({"A": "B", "B": "A"}, "A") in {"A", "B"}  # a cycle does not hang


def test_rendered_plan_shows_old_and_new_values_and_the_call_count() -> None:
    plan = PushPlan("hs", "hubspot", "merge", 100, upsert_calls=1, merge_calls=1)
    plan.updates.append(planned({"tier": "A"}, previous={"tier": "B"}))
    plan.creates.append(planned({"name": "New Co"}))
    plan.merges.append(Supersession("K9", "K1", "company", "901", "101"))
    console = Console(record=True, width=120)
    console.print(render_plan(plan))
    text = console.export_text()
    assert "1 create" in text and "1 update" in text and "1 merge" in text
    assert "2 API calls" in text
    assert "tier" in text and " B " in text and " A " in text
    assert "K9" in text and "merge" in text
    data = plan.as_dict()
    assert data["updates"][0]["changes"] == [{"field": "tier", "old": "B", "new": "A"}]
    assert data["api_calls"] == 2
