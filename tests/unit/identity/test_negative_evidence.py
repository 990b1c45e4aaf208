"""Negative evidence: each constraint refuses a merge the scoring alone would make.

The fixture is a small NAV-like customer list: head offices and their branches (own accounts,
bill-to the head office, a shared e-mail, other VAT numbers and countries), same-named companies
in other countries with other legal forms and VAT numbers failing the checksum, and the
duplicates that must still merge.
"""

from __future__ import annotations

from typing import Any

import pytest

from concord.config import IdentityConfig
from concord.identity.constraints import ConstrainedUnionFind, Evidence
from concord.identity.identifiers import conflicts, normalise_identifier
from concord.identity.linking import link_records, record_evidence
from concord.identity.normalise import CustomerRecord, legal_form, record_from_data


def rec(key: str, name: str, **data: Any) -> CustomerRecord:
    address = {k: data.pop(k) for k in ("line", "postcode", "city") if k in data}
    if address:
        address["country"] = data.get("country")
        data["addresses"] = [address]
    source, _, sid = key.partition(":")
    return record_from_data(source, sid, {"name": name, **data}, frozenset())


def clusters(records: list[CustomerRecord], **config: Any) -> set[frozenset[str]]:
    records = sorted(records, key=lambda r: r.key)
    result = link_records(records, IdentityConfig.model_validate(config))
    return {frozenset(records[i].key for i in c) for c in result.clusters if len(c) > 1}


HEAD = {
    "emails": ["info@brandt-logistik.de"],
    "phones": ["+49 30 1234567"],
    "country": "DE",
    "postcode": "10115",
    "city": "Berlin",
    "line": "Hauptstraße 5",
}


def test_a_duplicate_with_a_typo_and_another_legal_form_spelling_merges() -> None:
    found = clusters(
        [
            rec("nav:10000", "Brandt Logistik GmbH", tax_id="DE136695976", **HEAD),
            rec("erp:C-1", "Brandt Logistk G.m.b.H.", **HEAD),
        ]
    )
    assert found == {frozenset({"nav:10000", "erp:C-1"})}


def test_a_branch_billed_to_its_head_office_is_related_not_merged() -> None:
    branch = rec(
        "nav:10010",
        "Brandt Logistik Ltd",
        tax_id="GB980780684",
        country="GB",
        emails=["info@brandt-logistik.de"],
        postcode="EC1A 1BB",
        city="London",
        relations=[{"kind": "bill_to", "ref": "10000"}],
    )
    records = [rec("nav:10000", "Brandt Logistik GmbH", tax_id="DE136695976", **HEAD), branch]
    assert clusters(records) == set()
    result = link_records(sorted(records, key=lambda r: r.key), IdentityConfig())
    assert result.related == [(1, 0, "bill_to")]


def test_relations_forbid_the_merge_even_without_any_other_difference() -> None:
    records = [
        rec("nav:10000", "Brandt Logistik GmbH", **HEAD),
        rec(
            "nav:10020",
            "Brandt Logistik GmbH",
            **HEAD,
            relations=[{"kind": "branch", "ref": "nav:10000"}],
        ),
    ]
    assert clusters(records) == set()


def test_different_vat_numbers_never_merge_even_when_both_fail_the_checksum() -> None:
    a = rec("nav:1", "Meyer Bau GmbH", tax_id="DE111111111", **HEAD)
    b = rec("nav:2", "Meyer Bau GmbH", tax_id="DE222222222", **HEAD)
    assert all(k.valid is False for k in (*a.identifiers, *b.identifiers))
    assert conflicts(a.identifiers, b.identifiers) == ["vat"]
    assert clusters([a, b]) == set()


def test_the_same_vat_number_in_two_spellings_is_no_conflict() -> None:
    a = rec("nav:1", "Meyer Bau GmbH", tax_id="DE 136 695 976", **HEAD)
    b = rec("erp:2", "Meyer Bau", tax_id="136695976", **HEAD)
    assert conflicts(a.identifiers, b.identifiers) == []
    assert clusters([a, b]) == {frozenset({"nav:1", "erp:2"})}


def test_the_same_us_ein_links_two_records_deterministically() -> None:
    a = rec("tryton:1", "Dunder Mifflin", identifiers=[{"type": "us_ein", "value": "04-2103594"}])
    b = rec(
        "tryton:9",
        "Dunder-Mifflin Paper Company, Inc.",
        identifiers=[{"type": "ein", "value": "042103594"}],
    )
    assert normalise_identifier("ein", "04-2103594") == a.identifiers[0]
    assert a.identifiers[0].valid is True
    assert clusters([a, b]) == {frozenset({"tryton:1", "tryton:9"})}


def test_different_eins_keep_same_named_companies_apart() -> None:
    a = rec(
        "t:1",
        "Acme Inc",
        country="US",
        identifiers=[{"type": "us_ein", "value": "04-2103594"}],
        emails=["ap@acme.com"],
        postcode="10001",
        city="New York",
    )
    b = rec(
        "t:2",
        "Acme Inc",
        country="US",
        identifiers=[{"type": "us_ein", "value": "12-3456789"}],
        emails=["ap@acme.com"],
        postcode="10001",
        city="New York",
    )
    assert clusters([a, b]) == set()


def test_different_countries_need_strong_evidence() -> None:
    same = {"emails": ["office@nordwind.com"], "phones": ["+49 40 555123"], "line": "Kai 1"}
    a = rec("nav:1", "Nordwind Trading", country="DE", postcode="20095", city="Hamburg", **same)
    b = rec("nav:2", "Nordwind Trading", country="FR", postcode="20095", city="Hamburg", **same)
    c = rec("nav:3", "Nordwind Trading", country="DE", postcode="20095", city="Hamburg", **same)
    assert clusters([a, b]) == set()
    assert clusters([a, c]) == {frozenset({"nav:1", "nav:3"})}
    assert clusters([a, b], rules=[{"type": "probabilistic", "cross_country_weight": -100}]) == {
        frozenset({"nav:1", "nav:2"})
    }


def test_names_that_differ_only_in_legal_form_do_not_merge() -> None:
    assert legal_form("Solaris GmbH") == "gmbh"
    assert legal_form("Solaris Inc.") == "inc" == legal_form("Solaris Corporation")
    common = {"postcode": "10115", "city": "Berlin"}
    a = rec("nav:1", "Solaris GmbH", country="DE", **common)
    b = rec("nav:2", "Solaris Inc.", country="DE", **common)
    assert clusters([a, b]) == set()


def test_a_third_record_cannot_chain_a_refused_pair_together() -> None:
    ev = [
        Evidence(identifiers={"vat": frozenset({"DE1"})}),
        Evidence(),
        Evidence(identifiers={"vat": frozenset({"DE2"})}),
    ]
    uf = ConstrainedUnionFind(3, [], ev)
    assert uf.union(0, 1, deterministic=False, weight=20) is True
    assert uf.union(1, 2, deterministic=False, weight=20) is None
    assert uf.refusal == "different vat (DE1 vs DE2)"


@pytest.mark.parametrize("forced", [True, False])
def test_force_merge_wins_over_evidence_but_not_the_reverse(forced: bool) -> None:
    ev = [Evidence(countries=frozenset({"DE"})), Evidence(countries=frozenset({"FR"}))]
    uf = ConstrainedUnionFind(2, [], ev, cross_country_weight=30)
    joined = uf.union(0, 1, deterministic=False, weight=5, forced=forced)
    assert joined is (True if forced else None)


def test_record_evidence_marks_relation_targets_as_members() -> None:
    records = sorted(
        [rec("nav:1", "A GmbH"), rec("nav:2", "B Ltd", relations=[{"kind": "parent", "ref": "1"}])],
        key=lambda r: r.key,
    )
    ev = record_evidence(records)
    assert ev[1].related == frozenset({0})
    assert ev[0].members == frozenset({0})
