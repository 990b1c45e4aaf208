"""The behaviour the push stage relies on from every ``Target``, as an inheritable test suite.

A connector's tests subclass ``TargetContract`` (the class name must start with ``Test``) and
override the ``target`` fixture (a target built from its config section against a loopback
CRM), ``record`` (a customer the CRM accepts), ``refused`` (one it refuses on its own) and, for a
``MergingTarget``, ``merged_as_documented`` (whether the CRM now holds the merge the connector
documents: merged away, marked as superseded, or deleted). A ``ReadingTarget`` must also read
back what it pushed by concord id, with the CRM's record id, and leave out keys it never saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from concord.contracts import (
    MergingTarget,
    PushRecord,
    ReadingTarget,
    Supersession,
    Target,
    TargetConfig,
    build_target,
)


class TargetContract:
    """One outcome per record in order, refusals as outcomes, batches split, merges resolved."""

    @pytest.fixture
    def target(self) -> Iterator[Target]:
        """A target built from its config section against a loopback CRM (closed afterwards)."""
        raise NotImplementedError("override the target fixture")

    @staticmethod
    def built(section: dict[str, Any], name: str) -> Iterator[Target]:
        """Build the target of a ``targets.<name>`` section, yield it, close it (for fixtures)."""
        config = TargetConfig.model_validate(section)
        config.name = name
        target = build_target(config)
        try:
            yield target
        finally:
            target.close()

    def record(self, key: str) -> PushRecord:
        """A company record the CRM accepts."""
        raise NotImplementedError("override record()")

    def refused(self, key: str) -> PushRecord:
        """A record the CRM refuses on its own (a bad property value or name)."""
        raise NotImplementedError("override refused()")

    def merged_as_documented(self, target: Target, merge: Supersession) -> bool:
        """Whether the CRM now shows ``merge`` the way the connector documents it."""
        raise NotImplementedError("override merged_as_documented()")

    def test_it_is_a_target_whose_type_plans_without_building_one(self, target: Target) -> None:
        """The built connector is a ``Target`` whose class answers what a plan asks."""
        assert isinstance(target, Target)
        cls = type(target)
        assert 1 <= cls.default_batch <= cls.max_batch  # type: ignore[attr-defined]
        for member in ("validate", "from_config", "merge_action", "merge_calls"):
            assert callable(getattr(cls, member, None)), member

    def test_nothing_to_push_is_no_outcome_and_no_call(self, target: Target) -> None:
        """An empty push makes no call."""
        assert target.push([]) == []
        assert target.calls == 0

    def test_one_outcome_per_record_in_order(self, target: Target) -> None:
        """Each record gets one outcome, in the order sent."""
        records = [self.record(f"K{i:03d}") for i in range(5)]
        outcomes = target.push(records)
        assert [o.key for o in outcomes] == [r.key for r in records]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert target.calls >= 1

    def test_a_refused_record_is_an_outcome_with_the_crms_reason(self, target: Target) -> None:
        """A record the CRM refuses is an outcome with its message; its neighbours go through."""
        records = [self.record("K-good-1"), self.refused("K-bad"), self.record("K-good-2")]
        outcomes = target.push(records)
        assert [o.key for o in outcomes] == [r.key for r in records]
        assert [o.ok for o in outcomes] == [True, False, True]
        assert outcomes[1].error

    def test_more_records_than_one_call_takes_are_split_into_calls(self, target: Target) -> None:
        """More records than one call takes are sent in several calls, one outcome each."""
        size = type(target).max_batch  # type: ignore[attr-defined]
        records = [self.record(f"B{i:05d}") for i in range(size + 1)]
        outcomes = target.push(records)
        assert [o.key for o in outcomes] == [r.key for r in records]
        assert all(o.ok for o in outcomes)
        assert target.calls >= 2

    def test_a_merge_is_resolved_as_documented_and_again_is_done(self, target: Target) -> None:
        """A merge resolves as the connector documents; resolving it again is done, not an error."""
        if not isinstance(target, MergingTarget):
            pytest.skip("this target does not resolve merges")
        survivor, absorbed = target.push([self.record("M-survivor"), self.record("M-absorbed")])
        assert survivor.ok and absorbed.ok
        merge = Supersession(
            absorbed="M-absorbed",
            survivor="M-survivor",
            object_type="company",
            absorbed_remote_id=absorbed.remote_id,
            survivor_remote_id=survivor.remote_id,
        )
        (outcome,) = target.supersede([merge])
        assert (outcome.key, outcome.ok) == ("M-absorbed", True), outcome.error
        assert self.merged_as_documented(target, merge)
        (again,) = target.supersede([merge])
        assert (again.key, again.ok) == ("M-absorbed", True), again.error

    def test_records_read_back_by_key_and_unknown_keys_are_absent(self, target: Target) -> None:
        """A reading target finds what it pushed, by concord id, and nothing for other keys."""
        if not isinstance(target, ReadingTarget):
            pytest.skip("this target does not read its records back")
        records = [self.record("R-one"), self.record("R-two")]
        pushed = target.push(records)
        assert all(o.ok for o in pushed), [o.error for o in pushed]
        names = sorted(records[0].properties)
        found = {r.key: r for r in target.read("company", ["R-one", "R-two", "R-never"], names)}
        assert set(found) == {"R-one", "R-two"}
        for record, outcome in zip(records, pushed, strict=True):
            held = found[record.key]
            assert held.object_type == "company"
            assert {n: held.properties.get(n) for n in names} == record.properties
            if outcome.remote_id and held.remote_id:  # a list endpoint may not give the id
                assert held.remote_id == outcome.remote_id
