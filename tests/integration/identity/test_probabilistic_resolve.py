"""The resolve stage with the default (probabilistic) config: stored model, related accounts,
the guard and its review queue, incremental nights, and explain by weight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import IdentityConfig, PipelineConfig
from concord.identity.explain import explain
from concord.identity.review import append_overrides, decide, list_reviews
from concord.overrides import load_overrides
from concord.pipeline.resolve import resolve_identities as resolve
from concord.store import Store
from concord.store import tables as t
from tests.integration.identity.builders import customer, write


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.dispose()


def ids(store: Store) -> dict[str, str]:
    il = t.identity_links
    with store.engine.connect() as conn:
        rows = conn.execute(select(il.c.source, il.c.source_id, il.c.concord_id))
        return {f"{s}:{sid}": gid for s, sid, gid in rows}


HQ = {
    "email": "info@brandt-logistik.de",
    "phone": "+49 30 1234567",
    "country": "DE",
    "postcode": "10115",
    "city": "Berlin",
}


def nav_list() -> list[object]:
    return [
        customer("nav", "10000", "Brandt Logistik GmbH", tax_id="DE136695976", **HQ),
        customer("erp", "C-1", "Brandt Logistk G.m.b.H.", **HQ),
        customer(
            "nav",
            "10010",
            "Brandt Logistik Ltd",
            tax_id="GB980780684",
            country="GB",
            email="info@brandt-logistik.de",
            postcode="EC1A 1BB",
            city="London",
            relations=[{"kind": "bill_to", "ref": "10000"}],
        ),
    ]


def test_resolve_stores_the_model_and_relates_the_branch(store: Store) -> None:
    write(store, *nav_list())
    report = resolve(store, IdentityConfig(), "run_1")
    found = ids(store)
    assert found["nav:10000"] == found["erp:C-1"] != found["nav:10010"]
    with store.engine.connect() as conn:
        models = conn.execute(select(t.identity_models.c.run_id)).scalars().all()
        parent = conn.execute(
            select(t.golden.c.parent_concord_id).where(t.golden.c.concord_id == found["nav:10010"])
        ).scalar()
    assert models == ["run_1"]
    assert parent == found["nav:10000"]
    assert "company: priors" in report.model


def test_an_unchanged_night_is_incremental_and_writes_nothing(store: Store) -> None:
    others = [
        customer("erp", f"F-{n}", name, country="DE", postcode=f"8033{n}", city="München")
        for n, name in enumerate(
            [
                "Isar Bau AG",
                "Kofler Textil KG",
                "Ludwig Medien GmbH",
                "Sonnen Optik GmbH",
                "Alpen Pharma AG",
                "Zeller Druck KG",
            ]
        )
    ]
    write(store, *nav_list(), *others)
    resolve(store, IdentityConfig(), "run_1")
    second = resolve(store, IdentityConfig(), "run_2")
    assert second.incremental is True
    assert second.changed_records == 0
    assert second.links_written == 0
    write(store, customer("crm", "9", "Brandt Logistik", **HQ))
    third = resolve(store, IdentityConfig(), "run_3")
    assert third.incremental is True and third.changed_records == 1
    found = ids(store)
    assert found["crm:9"] == found["nav:10000"]
    full = resolve(store, IdentityConfig(), "run_4", full=True)
    assert full.incremental is False and full.links_written == 0


def test_the_guard_holds_a_large_new_cluster_for_review(store: Store, tmp_path: Path) -> None:
    shared = {
        "email": "books@accountants.de",
        "phone": "+49 40 999999",
        "country": "DE",
        "postcode": "20095",
        "city": "Hamburg",
    }
    write(store, *[customer("nav", f"{n}", "Hansa Handel GmbH", **shared) for n in range(4)])
    cfg = IdentityConfig.model_validate({"guard": {"max_cluster_size": 3}})
    report = resolve(store, cfg, "run_1")
    assert report.quarantined_clusters == 1
    assert len(set(ids(store).values())) == 4
    [held] = list_reviews(store)
    assert len(held.records) == 4 and held.bridges
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("# kept\nforce_merge: []\nnever_merge: []\n")
    assert decide(store, held.id, "accepted", overrides, "one company") == len(held.bridges)
    loaded = load_overrides(overrides)
    assert len(loaded.force_merge) == len(held.bridges)
    assert overrides.read_text().startswith("# kept\n")
    resolve(store, cfg.model_copy(update={"overrides": overrides}), "run_2", full=True)
    assert len(set(ids(store).values())) == 1
    assert list_reviews(store) == []


def test_append_overrides_keeps_comments_and_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(
        "force_merge:\n  - records: ['a:1', 'b:1']\n    reason: old\n# example\nnever_merge: []\n"
    )
    append_overrides(path, "force_merge", [("a:2", "b:2")], "new")
    append_overrides(path, "never_merge", [("a:3", "b:3")], "apart")
    loaded = load_overrides(path)
    assert [(p.a, p.b) for p in loaded.force_merge] == [("a:1", "b:1"), ("a:2", "b:2")]
    assert [(p.a, p.b, p.reason) for p in loaded.never_merge] == [("a:3", "b:3", "apart")]
    assert "# example" in path.read_text()


def test_explain_shows_the_weight_of_every_field_and_the_constraints(
    store: Store, tmp_path: Path
) -> None:
    write(store, *nav_list())
    resolve(store, IdentityConfig(), "run_1")
    cfg = PipelineConfig.model_validate({"sources": {}, "identity": {}})
    same = explain(store, cfg, "nav:10000", "erp:C-1")
    assert same.same and same.weights is not None
    fields = {f.field: f for f in same.weights.fields}
    assert set(fields) == {
        "org_name",
        "legal_form",
        "identifiers",
        "street",
        "postcode",
        "city",
        "country",
        "email",
        "email_domain",
        "phone",
    }
    assert fields["phone"].weight > 0 and fields["email"].weight > 0
    assert fields["identifiers"].level == "missing on one side"
    assert same.weights.probability > 0.9
    apart = explain(store, cfg, "nav:10000", "nav:10010")
    assert not apart.same
    assert any("related" in c or "different vat" in c for c in apart.constraints)
    from concord.identity.chart import waterfall_png

    png = waterfall_png(same.weights, tmp_path / "w.png", "pair")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_an_incremental_night_links_only_the_touched_components_as_it_would_link_them_all(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concord.pipeline.resolve as resolve_module
    from tests.integration.identity.test_resolve_components import state

    others = [
        customer("erp", f"F-{n}", name, country="DE", postcode=f"8033{n}", city="München")
        for n, name in enumerate(
            [
                "Isar Bau AG",
                "Kofler Textil KG",
                "Ludwig Medien GmbH",
                "Sonnen Optik GmbH",
                "Alpen Pharma AG",
                "Zeller Druck KG",
                "Huber Holz GmbH",
                "Brenner Glas KG",
            ]
        )
    ]
    changes = [
        customer("crm", "9", "Brandt Logistik", **HQ),  # new, matches the Brandt records
        customer("erp", "F-1", "Kofler Textil KG", country="DE", postcode="80339", city="Wien"),
    ]

    def night(s: Store) -> tuple[Any, dict[str, Any]]:
        write(s, *nav_list(), *others)
        resolve(s, IdentityConfig(), "run_1")
        write(s, *changes)
        report = resolve(s, IdentityConfig(), "run_2")
        return report, state(s)

    report, by_component = night(store)
    whole = Store.open(f"sqlite:///{tmp_path / 'whole.db'}")
    # the same night with every record in scope: the incremental night as it was before
    monkeypatch.setattr(
        resolve_module, "touched_components", lambda records, *_a, **_k: list(range(len(records)))
    )
    try:
        whole_report, linked_all = night(whole)
    finally:
        whole.dispose()
    assert report.incremental and whole_report.incremental
    assert report.changed_records == whole_report.changed_records == 2
    assert report.relinked_records < whole_report.relinked_records == report.records
    assert by_component == linked_all
    for name in ("clusters", "multi_record_clusters", "links_written", "links_by_rule"):
        assert getattr(report, name) == getattr(whole_report, name), name
    links = by_component["links"]
    assert links["crm:9"][0] == links["nav:10000"][0]
