"""The resolve stage against a real store (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from concord.config import IdentityConfig, MatchRuleConfig, PipelineConfig
from concord.customer360.lookup import find_customers
from concord.pipeline.build_360 import build as build_360_rows
from concord.pipeline.resolve import resolve_identities as resolve
from concord.store import Store
from concord.store import tables as t
from tests.integration.identity.builders import T0, customer, write

FUZZY = MatchRuleConfig(name="fuzzy_name", type="fuzzy_name", threshold=88)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def config(**kw: object) -> IdentityConfig:
    rules = [MatchRuleConfig.model_validate(r) for r in ("crossref", "tax_id", "email")]
    return IdentityConfig.model_validate({"rules": [*rules, FUZZY], **kw})


def ids(store: Store) -> dict[str, str]:
    il = t.identity_links
    with store.engine.connect() as conn:
        return {
            f"{s}:{sid}": gid
            for s, sid, gid in conn.execute(select(il.c.source, il.c.source_id, il.c.concord_id))
        }


def events(store: Store) -> list[tuple[str, str, str | None]]:
    ev = t.identity_events
    with store.engine.connect() as conn:
        return [
            (k, c, o)
            for k, c, o in conn.execute(
                select(ev.c.kind, ev.c.concord_id, ev.c.other_id).order_by(ev.c.id)
            )
        ]


def golden(store: Store) -> dict[str, tuple[str, str | None]]:
    g = t.golden
    with store.engine.connect() as conn:
        return {
            gid: (status, into)
            for gid, status, into in conn.execute(
                select(g.c.concord_id, g.c.status, g.c.merged_into)
            )
        }


def test_records_from_three_sources_become_one_customer_with_reasons(store: Store) -> None:
    write(
        store,
        customer("erp_a", "1", "Acme Corporation", tax_id="DE136695976", country="DE"),
        customer("erp_b", "x9", "ACME Corp.", tax_id="de 136 695 976", country="DE"),
        customer("erp_c", "77", "Acme Corp", country="DE", postcode="10115", city="Berlin"),
        customer(
            "erp_b", "x10", "Acmee Corporation", country="DE", postcode="10115", city="Berlin"
        ),
    )
    report = resolve(store, config(), "run_1")
    assert report.clusters == 1
    assert len(set(ids(store).values())) == 1
    il = t.identity_links
    with store.engine.connect() as conn:
        rules = dict(conn.execute(select(il.c.source + ":" + il.c.source_id, il.c.rule)).all())
    assert rules["erp_b:x9"] == "tax_id"
    assert "fuzzy_name" in {rules["erp_c:77"], rules["erp_b:x10"]}


def test_ids_are_stable_across_runs_and_a_new_record_joins_its_cluster(store: Store) -> None:
    write(
        store,
        customer("erp_a", "1", "Globex GmbH", email="info@globex.de", country="DE"),
        customer("erp_a", "2", "Initech Ltd", email="hello@initech.co.uk", country="GB"),
    )
    resolve(store, config(), "run_1")
    first = ids(store)
    report = resolve(store, config(), "run_2")
    assert ids(store) == first
    assert report.links_written == 0
    assert report.new_ids == 0
    write(store, customer("erp_b", "9", "GLOBEX", email="INFO@globex.de", country="DE"))
    report = resolve(store, config(), "run_3")
    after = ids(store)
    assert after["erp_b:9"] == first["erp_a:1"]
    assert {k: after[k] for k in first} == first
    assert report.links_written == 1
    assert report.new_ids == 0


def test_two_clusters_joined_by_a_new_record_merge_with_an_event(store: Store) -> None:
    write(
        store,
        customer("erp_a", "1", "Umbrella AG", email="a@umbrella.de", country="DE"),
        customer("erp_a", "3", "Umbrella AG Berlin", email="a@umbrella.de", country="DE"),
        customer("erp_b", "2", "Umbrella Aktiengesellschaft", tax_id="DE136695976"),
    )
    resolve(store, config(), "run_1")
    before = ids(store)
    big, small = before["erp_a:1"], before["erp_b:2"]
    assert big != small
    # A record carrying both the email and the tax id bridges the two clusters.
    write(
        store,
        customer(
            "erp_c", "5", "Umbrella", email="a@umbrella.de", tax_id="DE136695976", country="DE"
        ),
    )
    report = resolve(store, config(), "run_2")
    after = ids(store)
    assert report.merges == 1
    assert set(after.values()) == {big}  # the id holding most records survives
    assert ("merge", big, small) in events(store)
    assert golden(store)[small] == ("merged", big)


def test_a_merged_id_still_finds_its_survivor(store: Store) -> None:
    write(
        store,
        customer("erp_a", "1", "Umbrella AG", email="a@umbrella.de", country="DE"),
        customer("erp_b", "2", "Umbrella Aktiengesellschaft", tax_id="DE136695976"),
    )
    cfg = PipelineConfig.model_validate({"sources": {}, "identity": config().model_dump()})
    resolve(store, cfg.identity, "run_1")
    write(store, customer("erp_c", "5", "U", email="a@umbrella.de", tax_id="DE136695976"))
    resolve(store, cfg.identity, "run_2")
    build_360_rows(store, cfg, T0, "run_2")
    [(_kind, survivor, absorbed)] = events(store)
    [view] = find_customers(store, str(absorbed))
    assert view.asked_for == absorbed
    assert view.concord_id == survivor == ids(store)["erp_b:2"] == ids(store)["erp_a:1"]


def test_a_cluster_that_breaks_up_splits_with_an_event_and_keeps_its_id(store: Store) -> None:
    write(
        store,
        customer("erp_a", "1", "Stark Industries", email="ops@stark.com", country="US"),
        customer("erp_a", "2", "Stark Industries Inc", email="ops@stark.com", country="US"),
        customer("erp_b", "3", "Stark Ind", email="ops@stark.com", country="US"),
    )
    resolve(store, config(), "run_1")
    before = ids(store)
    assert len(set(before.values())) == 1
    gid = before["erp_a:1"]
    write(store, customer("erp_b", "3", "Wayne Enterprises", email="bruce@wayne.com"))
    report = resolve(store, config(), "run_2")
    after = ids(store)
    assert report.splits == 1
    assert after["erp_a:1"] == after["erp_a:2"] == gid
    assert after["erp_b:3"] != gid
    assert ("split", after["erp_b:3"], gid) in events(store)


def test_never_merge_override_wins_over_rules(store: Store, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "never_merge:\n"
        "  - records: ['erp_a:1', 'erp_b:2']\n"
        "    reason: shared accounting firm email\n"
        "force_merge:\n"
        "  - records: ['erp_a:7', 'erp_b:8']\n"
        "    reason: renamed after acquisition\n"
    )
    write(
        store,
        customer("erp_a", "1", "Alpha Bakery", email="books@accountants.de"),
        customer("erp_b", "2", "Beta Butchers", email="books@accountants.de"),
        customer("erp_a", "7", "Old Name GmbH"),
        customer("erp_b", "8", "Totally New Name GmbH"),
    )
    report = resolve(store, config(overrides=overrides), "run_1")
    found = ids(store)
    assert found["erp_a:1"] != found["erp_b:2"]
    assert found["erp_a:7"] == found["erp_b:8"]
    assert report.blocked_by_override == 1
    assert report.links_by_rule.get("force_merge") == 1


def test_records_that_differ_stay_apart(store: Store) -> None:
    write(
        store,
        customer(
            "erp_a",
            "1",
            "Anna Schmidt",
            is_person=True,
            email="anna@gmail.com",
            postcode="10115",
            city="Berlin",
            country="DE",
        ),
        customer(
            "erp_b",
            "2",
            "Anna Schmidt",
            is_person=True,
            email="anna.s@gmail.com",
            postcode="80331",
            city="München",
            country="DE",
        ),
        customer("erp_a", "3", "Acme Corp", country="DE", postcode="10115"),
        customer("erp_b", "4", "Acme Corp", country="FR", postcode="10115"),
    )
    resolve(store, config(), "run_1")
    assert len(set(ids(store).values())) == 4


def test_explain_counts_common_name_words_over_the_name_keys_resolve_compares(
    store: Store,
) -> None:
    from concord.identity.normalise import load_customer_records, name_keys_in_store

    write(
        store,
        customer("erp", "1", "Smith John", is_person=True),
        customer("crm", "1", "John Smith", is_person=True),
        customer("erp", "2", "Acme Logistik GmbH"),
    )
    resolved = sorted(r.name_key for r in load_customer_records(store, config()))
    assert sorted(name_keys_in_store(store)) == resolved
    assert resolved.count("john smith") == 2  # a person's words are compared in any order


def test_records_normalised_on_an_earlier_night_are_read_back_equal_and_renormalised_on_change(
    store: Store,
) -> None:
    from concord.identity.normalise import load_customer_records

    write(
        store,
        customer(
            "erp",
            "1",
            "Müller Logistik GmbH",
            country="DE",
            tax_id="DE136695976",
            phone="+49 40 1234567",
            email="ap@mueller.example.de",
            postcode="20095",
            city="Hamburg",
        ),
        customer("crm", "1", "Smith John", is_person=True, email="john@gmail.com"),
    )
    fresh = load_customer_records(store, config(), remember=True)
    assert load_customer_records(store, config()) == fresh  # read back, not normalised again
    ir = t.identity_records
    with store.engine.connect() as conn:
        stored = set(conn.execute(select(ir.c.source, ir.c.source_id)).all())
    assert stored == {("erp", "1"), ("crm", "1")}
    write(store, customer("erp", "1", "Müller Logistik GmbH", country="DE", phone="+49 40 7654321"))
    changed = {r.key: r for r in load_customer_records(store, config(), remember=True)}
    assert changed["erp:1"].phones != fresh[[r.key for r in fresh].index("erp:1")].phones
    by_default = {r.key: r for r in fresh}["crm:1"]
    assert by_default.email_domains == ()  # gmail.com is a free mail domain
    other = config(free_mail_domains=["example.org"])  # another setting: normalised again
    again = {r.key: r for r in load_customer_records(store, other)}["crm:1"]
    assert again.email_domains == ("gmail.com",)
