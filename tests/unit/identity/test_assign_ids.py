"""Stable concord ids across runs: joins, merges and splits (pure function, no store)."""

from __future__ import annotations

from concord.identity.ids import IdentityEvent, assign_ids, concord_id_for


def test_new_clusters_get_ids_derived_from_their_first_record() -> None:
    out = assign_ids([["a:1", "b:1"], ["a:2"]], prior={}, taken=set())
    assert out.ids["a:1"] == out.ids["b:1"] == concord_id_for("a:1", set())
    assert out.ids["a:2"] == concord_id_for("a:2", set())
    assert out.events == []
    again = assign_ids([["a:1", "b:1"], ["a:2"]], prior={}, taken=set())
    assert again.ids == out.ids


def test_a_new_record_joins_the_existing_id() -> None:
    out = assign_ids([["a:1", "a:9", "b:1"]], prior={"a:9": "cc_x", "b:1": "cc_x"}, taken={"cc_x"})
    assert set(out.ids.values()) == {"cc_x"}
    assert out.new_ids == [] and out.events == []


def test_merge_keeps_the_id_with_most_records_and_records_the_absorbed_one() -> None:
    prior = {"a:1": "cc_small", "b:1": "cc_big", "b:2": "cc_big"}
    out = assign_ids([["a:1", "b:1", "b:2"]], prior, {"cc_small", "cc_big"})
    assert set(out.ids.values()) == {"cc_big"}
    assert out.events == [IdentityEvent("merge", "cc_big", "cc_small", {"members": 3})]


def test_split_leaves_the_id_with_the_larger_part() -> None:
    prior = {"a:1": "cc_x", "b:1": "cc_x", "b:2": "cc_x"}
    out = assign_ids([["a:1"], ["b:1", "b:2"]], prior, {"cc_x"})
    assert out.ids["b:1"] == out.ids["b:2"] == "cc_x"
    assert out.ids["a:1"] != "cc_x"
    [event] = out.events
    assert event.kind == "split"
    assert (event.concord_id, event.other_id) == (out.ids["a:1"], "cc_x")


def test_derived_ids_never_collide_with_taken_ones() -> None:
    first = concord_id_for("a:1", set())
    assert concord_id_for("a:1", {first}) != first
