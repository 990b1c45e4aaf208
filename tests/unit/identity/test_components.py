"""Which records an incremental night re-links: whole key-connected components, no more."""

from __future__ import annotations

from typing import Any

from concord.config import MatchRuleConfig
from concord.identity.components import component_rules, touched_components
from concord.identity.normalise import CustomerRecord, record_from_data

RULES = [MatchRuleConfig.model_validate(r) for r in ("crossref", "tax_id", "email")]


def rec(key: str, name: str, **data: Any) -> CustomerRecord:
    source, _, sid = key.partition(":")
    return record_from_data(source, sid, {"name": name, **data}, frozenset({"gmail.com"}))


def keys_touched(
    records: list[CustomerRecord], changed: set[str], prior: dict[str, str] | None = None
) -> set[str]:
    records = sorted(records, key=lambda r: r.key)
    at = {i for i, r in enumerate(records) if r.key in changed}
    return {records[i].key for i in touched_components(records, at, prior or {}, RULES)}


def test_records_sharing_a_key_with_a_changed_record_are_relinked_and_the_rest_are_not() -> None:
    records = [
        rec("a:1", "Alpha", emails=["info@alpha.de"]),
        rec("b:1", "Alpha", emails=["info@alpha.de"], tax_id="DE136695976"),
        rec("c:1", "Alpha Holding", tax_id="DE136695976"),
        rec("a:2", "Beta", emails=["info@beta.de"]),
        rec("b:2", "Beta", emails=["info@beta.de"]),
    ]
    # a:1 shares an e-mail with b:1, which shares a tax id with c:1: one component, transitively
    assert keys_touched(records, {"a:1"}) == {"a:1", "b:1", "c:1"}
    assert keys_touched(records, set()) == set()


def test_a_cross_reference_a_relation_and_a_prior_golden_id_join_a_component() -> None:
    records = [
        rec("erp:7", "Gamma"),
        rec("crm:7", "Gamma", crossrefs=["erp:customers:7"]),
        rec("erp:8", "Gamma Branch", relations=[{"kind": "bill_to", "ref": "erp:7"}]),
        rec("erp:9", "Delta"),
        rec("crm:9", "Delta Ltd"),  # shares nothing with erp:9 now, but did last run
        rec("erp:10", "Epsilon"),
    ]
    prior = {"erp:9": "cc_delta", "crm:9": "cc_delta"}
    assert keys_touched(records, {"crm:7"}, prior) == {"erp:7", "crm:7", "erp:8"}
    assert keys_touched(records, {"erp:9"}, prior) == {"erp:9", "crm:9"}
    assert keys_touched(records, {"erp:10"}, prior) == {"erp:10"}


def test_free_mail_links_nothing_so_it_joins_no_component() -> None:
    records = [rec("a:1", "X", emails=["x@gmail.com"]), rec("b:1", "Y", emails=["x@gmail.com"])]
    assert keys_touched(records, {"a:1"}) == {"a:1"}


def test_only_rules_linking_on_equal_keys_allow_relinking_by_component() -> None:
    fuzzy = MatchRuleConfig.model_validate({"name": "fz", "type": "fuzzy_name"})
    probabilistic = MatchRuleConfig.model_validate("probabilistic")
    assert component_rules(RULES)
    assert not component_rules([*RULES, fuzzy])
    assert not component_rules([probabilistic])
    assert not component_rules([])
