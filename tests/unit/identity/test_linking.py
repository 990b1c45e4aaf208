"""Rules, fuzzy matching, blocking and overrides on in-memory records (no store)."""

from __future__ import annotations

from typing import Any

from concord.config import IdentityConfig, MatchRuleConfig
from concord.identity.blocking import blocking_fields
from concord.identity.linking import fuzzy_edges, link_records
from concord.identity.normalise import CustomerRecord, record_from_data
from concord.overrides import OverridePair, Overrides

FREE = frozenset({"gmail.com"})


def rec(key: str, name: str, **data: Any) -> CustomerRecord:
    address = {k: data.pop(k) for k in ("postcode", "city") if k in data}
    if address:
        data["addresses"] = [address]
    source, _, sid = key.partition(":")
    return record_from_data(source, sid, {"name": name, **data}, FREE)


def cfg(*rules: Any, **kw: Any) -> IdentityConfig:
    return IdentityConfig.model_validate({"rules": list(rules), **kw})


def clusters(
    records: list[CustomerRecord], config: IdentityConfig, **kw: Any
) -> set[frozenset[str]]:
    records = sorted(records, key=lambda r: r.key)
    result = link_records(records, config, **kw)
    return {frozenset(records[i].key for i in c) for c in result.clusters}


def test_crossref_links_a_record_to_the_one_it_names() -> None:
    records = [rec("a:1", "X"), rec("b:7", "Y", crossrefs=["a:customers:1"])]
    assert clusters(records, cfg("crossref")) == {frozenset({"a:1", "b:7"})}


def test_invalid_tax_ids_do_not_link() -> None:
    records = [rec("a:1", "X", tax_id="DE136695977"), rec("b:1", "Y", tax_id="DE136695977")]
    assert len(clusters(records, cfg("tax_id"))) == 2


def test_shared_free_mail_address_does_not_link() -> None:
    records = [rec("a:1", "X", emails=["me@gmail.com"]), rec("b:1", "Y", emails=["me@gmail.com"])]
    assert len(clusters(records, cfg("email"))) == 2


def test_fuzzy_name_links_typos_with_a_corroborating_postcode() -> None:
    records = [
        rec("a:1", "Hoffmann Logistik GmbH", country="DE", postcode="10115"),
        rec("b:1", "Hofmann Logistik", country="DE", postcode="10115"),
    ]
    result = link_records(records, cfg("fuzzy_name"))
    assert len(result.clusters) == 1
    assert result.links[1].rule == "fuzzy_name"
    assert 0.9 < result.links[1].score < 1.0
    assert result.links[1].matched_to == "a:1"


def test_fuzzy_name_needs_corroboration_and_the_same_country() -> None:
    no_evidence = [
        rec("a:1", "Hoffmann Logistik", country="DE"),
        rec("b:1", "Hofmann Logistik", country="DE"),
    ]
    assert len(clusters(no_evidence, cfg("fuzzy_name"))) == 2
    other_country = [
        rec("a:1", "Hoffmann Logistik", country="DE", postcode="10115"),
        rec("b:1", "Hoffmann Logistik", country="AT", postcode="10115"),
    ]
    assert len(clusters(other_country, cfg("fuzzy_name"))) == 2


def test_identical_distinctive_names_count_as_evidence() -> None:
    records = [
        rec("a:1", "Hoffmann Logistik GmbH", country="DE"),
        rec("b:1", "HOFFMANN LOGISTIK", country="DE"),
    ]
    result = link_records(records, cfg("fuzzy_name"))
    assert len(result.clusters) == 1
    no_unique = cfg({"name": "fuzzy_name", "unique_name_weight": 0})
    assert len(clusters(records, no_unique)) == 2


def test_persons_need_more_evidence_than_companies() -> None:
    one = [
        rec("a:1", "Anna Schmidt", is_person=True, country="DE", postcode="10115"),
        rec("b:1", "Anna Schmitt", is_person=True, country="DE", postcode="10115"),
    ]
    assert len(clusters(one, cfg("fuzzy_name"))) == 2
    two = [
        rec(
            "a:1",
            "Anna Schmidt",
            is_person=True,
            country="DE",
            postcode="10115",
            phones=["030 1234567"],
        ),
        rec(
            "b:1",
            "Schmidt Anna",
            is_person=True,
            country="DE",
            postcode="10115",
            phones=["+49301234567"],
        ),
    ]
    assert len(clusters(two, cfg("fuzzy_name"))) == 1


def test_threshold_is_configurable() -> None:
    records = [
        rec("a:1", "Nordwind Handel", country="DE", postcode="20095"),
        rec("b:1", "Nordwand Handel", country="DE", postcode="20095"),
    ]
    strict = {"name": "fuzzy_name", "threshold": 99}
    loose = {"name": "fuzzy_name", "threshold": 85}
    assert len(clusters(records, cfg(strict))) == 2
    assert len(clusters(records, cfg(loose))) == 1


def test_blocking_only_compares_records_sharing_a_corroborating_value() -> None:
    records = [
        rec(f"a:{i:04d}", f"Company {i}", country="DE", postcode=f"{i:05d}") for i in range(500)
    ]
    rule = MatchRuleConfig(name="fuzzy_name", type="fuzzy_name", corroborate=["postcode"])
    _edges, comparisons = fuzzy_edges(records, rule, max_block=50)
    assert comparisons == 0


def test_oversized_blocks_are_cut_so_comparisons_grow_near_linearly() -> None:
    rule = MatchRuleConfig(name="fuzzy_name", type="fuzzy_name", corroborate={"city": 1.0})
    counts = []
    for n in (400, 1600):
        records = [
            rec(f"a:{i:05d}", f"Firm {i:05d}", country="DE", city="Berlin") for i in range(n)
        ]
        counts.append(fuzzy_edges(records, rule, max_block=40)[1])
    assert counts[1] < counts[0] * 4 * 1.5  # quadratic would be 16x
    assert counts[0] < 400 * 399 // 2


def test_never_merge_blocks_a_union_even_through_a_third_record() -> None:
    records = [
        rec("a:1", "X", emails=["x@x.de"]),
        rec("b:1", "X", emails=["x@x.de"], tax_id="DE136695976"),
        rec("c:1", "X", tax_id="DE136695976"),
    ]
    never = Overrides(never_merge=(OverridePair("a:1", "c:1", "", "f:1"),))
    found = clusters(records, cfg("email", "tax_id"), overrides=never)
    assert all(not {"a:1", "c:1"} <= c for c in found)


def test_force_merge_joins_records_no_rule_links() -> None:
    records = [rec("a:1", "Old Name"), rec("b:1", "New Name")]
    forced = Overrides(force_merge=(OverridePair("a:1", "b:1", "renamed", "f:3"),))
    records.sort(key=lambda r: r.key)
    result = link_records(records, cfg("email"), forced)
    assert len(result.clusters) == 1
    assert result.links[1].rule == "force_merge"


def test_links_form_a_tree_rooted_at_the_first_record() -> None:
    records = sorted(
        [
            rec("a:1", "X", emails=["x@x.de"]),
            rec("b:1", "X", emails=["x@x.de"], tax_id="DE136695976"),
            rec("c:1", "X", tax_id="DE136695976"),
        ],
        key=lambda r: r.key,
    )
    result = link_records(records, cfg("email", "tax_id"))
    assert [link.rule for link in result.links] == ["seed", "email", "tax_id"]
    assert [link.matched_to for link in result.links] == [None, "a:1", "b:1"]


def test_fields_too_weak_to_link_alone_get_no_blocks() -> None:
    rule = MatchRuleConfig(name="fuzzy_name", type="fuzzy_name")
    assert blocking_fields(rule) == ["postcode", "phone", "email_domain"]
    strong_city = MatchRuleConfig(name="f", type="fuzzy_name", corroborate={"city": 1.0})
    assert blocking_fields(strong_city) == ["city"]


def test_explain_s_rule_verdict_agrees_with_the_links_resolve_makes() -> None:
    """Clusters are exactly the connected pairs on which ``rule_verdict`` fires."""
    from concord.identity.linking import common_tokens, rule_verdict

    records = sorted(
        [
            rec("a:1", "Acme GmbH", tax_id="DE811907980", emails=["info@acme.de"], country="DE"),
            rec("b:1", "ACME", tax_id="DE811907980", country="DE", postcode="10115"),
            rec("b:2", "Acme Gmbh", emails=["info@acme.de"], country="DE", postcode="10115"),
            rec("c:1", "Beta Ltd", crossrefs=["a:customers:1"], country="DE"),
            rec("c:2", "Smith John", is_person=True, country="DE", postcode="10115"),
            rec("d:2", "John Smith", is_person=True, country="DE", postcode="10115"),
            rec("d:3", "Gamma", emails=["gamma@gmail.com"]),
            rec("e:3", "Delta", emails=["gamma@gmail.com"]),
        ],
        key=lambda r: r.key,
    )
    common = common_tokens(r.name_key for r in records)
    for rule_name in ("crossref", "tax_id", "email", "fuzzy_name"):
        config = cfg(rule_name)
        group = {r.key: {r.key} for r in records}
        for a in records:
            for b in records:
                if a.key < b.key and rule_verdict(a, b, config.rules[0], common).fires:
                    joined = group[a.key] | group[b.key]
                    for key in joined:
                        group[key] = joined
        expected = {frozenset(g) for g in group.values()}
        assert clusters(records, config) == expected, rule_name
        assert any(len(c) > 1 for c in expected), rule_name  # each rule links something here
