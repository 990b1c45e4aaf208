"""Deterministic rules on a night: only the components a change touched are linked again, and
the result is the full resolve's, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import IdentityConfig
from concord.model import Customer, RecordState
from concord.pipeline.resolve import resolve_identities as resolve
from concord.store import Store
from concord.store import tables as t
from tests.integration.identity.builders import T0, customer, write

RULES = {"rules": ["crossref", "tax_id", "email"]}


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def first_night() -> list[Customer]:
    return [
        customer("nav", "1", "Alpha GmbH", email="info@alpha.de"),
        customer("erp", "1", "Alpha", email="info@alpha.de"),
        customer("nav", "2", "Beta AG", tax_id="DE136695976", country="DE"),
        customer("erp", "2", "Beta", tax_id="DE136695976", country="DE"),
        customer("nav", "3", "Gamma KG", email="info@gamma.de"),
        customer("erp", "3", "Gamma", email="info@gamma.de"),
        customer("crm", "3", "Gamma", crossrefs=["nav:customers:3"]),
        customer("nav", "4", "Delta GmbH", email="info@delta.de"),
        customer("erp", "4", "Delta", email="info@delta.de"),
        customer("nav", "5", "Epsilon SE"),
        customer("nav", "6", "Delta Lager", relations=[{"kind": "bill_to", "ref": "nav:4"}]),
        customer("nav", "9", "Theta AG", email="info@theta.de"),
        customer("erp", "9", "Theta", email="info@theta.de"),
    ]


def second_night() -> list[Customer]:
    later = T0 + timedelta(days=1)
    return [
        # erp:1 now also holds Beta's tax id: Alpha and Beta merge
        customer(
            "erp", "1", "Alpha", email="info@alpha.de", tax_id="DE136695976", updated_at=later
        ),
        # erp:3 leaves Gamma (nav:3 and crm:3 stay together through the cross-reference)
        customer("erp", "3", "Gamma", email="neu@gamma-neu.de", updated_at=later),
        customer("crm", "11", "Omega Ltd", email="info@omega.de", updated_at=later),
        customer("erp", "9", "Theta", email="info@theta.de", record_state=RecordState.ARCHIVED),
        # nothing identity compares changed: its component is left as it was
        customer("nav", "5", "Epsilon SE", updated_at=later),
    ]


def state(store: Store) -> dict[str, Any]:
    il, g, ev = t.identity_links, t.golden, t.identity_events
    with store.engine.connect() as conn:
        links = {
            f"{s}:{sid}": (gid, rule, score, matched, fp)
            for s, sid, gid, rule, score, matched, fp in conn.execute(
                select(
                    il.c.source,
                    il.c.source_id,
                    il.c.concord_id,
                    il.c.rule,
                    il.c.score,
                    il.c.matched_to,
                    il.c.fingerprint,
                )
            )
        }
        golden = {
            gid: (status, into, parent)
            for gid, status, into, parent in conn.execute(
                select(g.c.concord_id, g.c.status, g.c.merged_into, g.c.parent_concord_id)
            )
        }
        events = sorted(
            (kind, gid, other, repr(sorted(detail.items())))
            for kind, gid, other, detail in conn.execute(
                select(ev.c.kind, ev.c.concord_id, ev.c.other_id, ev.c.detail).where(
                    ev.c.run_id == "run_2"
                )
            )
        )
    return {"links": links, "golden": golden, "events": events}


def night(store: Store, cfg: IdentityConfig, *, full: bool) -> dict[str, Any]:
    write(store, *first_night())
    resolve(store, cfg, "run_1")
    write(store, *second_night())
    report = asdict(resolve(store, cfg, "run_2", full=full))
    return {"report": report, **state(store)}


def test_a_night_relinks_only_the_touched_components_and_equals_a_full_resolve(
    store: Store, tmp_path: Path
) -> None:
    cfg = IdentityConfig.model_validate(RULES)
    by_component = night(store, cfg, full=False)
    other = Store.open(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        in_full = night(other, cfg, full=True)
    finally:
        other.dispose()
    report, full_report = by_component.pop("report"), in_full.pop("report")
    assert report["incremental"] is True and full_report["incremental"] is False
    # Alpha, Beta, Gamma, the new Omega and what is left of Theta; not Delta's three, Epsilon
    assert report["relinked_records"] == 9 and full_report["relinked_records"] == 13
    assert by_component == in_full
    same = ("records", "clusters", "multi_record_clusters", "new_ids", "merges", "splits")
    same += ("links_written", "links_removed", "links_by_rule", "quarantined_clusters")
    assert {k: report[k] for k in same} == {k: full_report[k] for k in same}
    assert report["merges"] == 1 and report["splits"] == 1 and report["links_removed"] == 1
    links = by_component["links"]
    assert links["erp:1"][0] == links["erp:2"][0] != links["erp:4"][0]
    assert links["nav:6"][0] in {g for g, (_s, _i, parent) in by_component["golden"].items()}
    assert by_component["golden"][links["nav:6"][0]][2] == links["nav:4"][0]


def test_changed_rules_or_overrides_relink_everything(store: Store, tmp_path: Path) -> None:
    cfg = IdentityConfig.model_validate(RULES)
    write(store, *first_night())
    resolve(store, cfg, "run_1")
    quiet = resolve(store, cfg, "run_2")
    assert quiet.incremental is True and quiet.relinked_records == 0
    full = resolve(store, cfg, "x", full=True)
    assert quiet.links_written == 0 and quiet.clusters == full.clusters == 7
    fewer = IdentityConfig.model_validate({"rules": ["crossref", "email"]})
    assert resolve(store, fewer, "run_3").relinked_records == 13
    assert resolve(store, fewer, "run_4").relinked_records == 0
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "never_merge:\n  - records: ['nav:4', 'erp:4']\n    reason: two companies\n"
    )
    with_overrides = fewer.model_copy(update={"overrides": overrides})
    report = resolve(store, with_overrides, "run_5")
    assert report.relinked_records == 13 and report.blocked_by_override == 1
    with store.engine.connect() as conn:
        modes = conn.execute(
            select(t.identity_resolves.c.mode).order_by(t.identity_resolves.c.id)
        ).scalars()
        assert list(modes) == ["full", "components", "full", "full", "components", "full"]
