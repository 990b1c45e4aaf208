"""Deletes and archives arrive: an archived Tryton party becomes an archived customer, an id sweep
turns a deleted one into a tombstone, identity leaves both out, and the push retires them in the
CRM (a status property, or archived) instead of keeping them live. The tryton profile against
``sandbox/tryton_rest.py``, pushing to the HubSpot-like ``sandbox/crm.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import load_config
from concord.errors import ConcordError
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.tryton_rest import TrytonRestServer
from tests.integration.connectors.tryton_dialect import (
    CUSTOMERS,
    FAST_HTTP,
    write_tryton_config,
)
from tests.repo_config import REPO

NAMES = [
    "Alder Logistics GmbH",
    "Birch Foods BV",
    "Cedar Tools Oy",
    "Dogwood Retail SA",
    "Elm Systems SpA",
    "Fir Industries Ltd",
    "Ginkgo Trading AG",
    "Hazel Textiles SARL",
    "Ironwood Metals AB",
    "Juniper Media ApS",
    "Kauri Marine NV",
    "Larch Pharma KG",
]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TrytonRestServer, CrmServer]]:
    monkeypatch.setenv("FAKE_TRYTON_KEY", "tryton-key")
    monkeypatch.setenv("FAKE_CRM_TOKEN", "crm-token")
    with TrytonRestServer() as erp, CrmServer(token="crm-token") as crm:
        erp.models = {"party.party": {}, "company.company": {}}
        erp.add("company.company", {"id": 1, "party": 1000})
        base = datetime.now(UTC) - timedelta(days=1)
        for i, name in enumerate(NAMES, start=1):
            erp.add(
                "party.party",
                {"id": i, "name": name, "code": f"C{i:03d}", "email": f"ap@{i}.example.com"},
                at=base + timedelta(seconds=i),
            )
        yield erp, crm


def write_config(path: Path, erp: TrytonRestServer, crm: CrmServer, **target: Any) -> Path:
    crm_target = {
        "type": "hubspot",
        "base_url": crm.url,
        "auth": {"type": "bearer", "token": {"env": "FAKE_CRM_TOKEN"}},
        "object_type": "companies",
        "id_property": "concord_id",
        "mapping": str(REPO / "mappings" / "crm" / "sandbox_crm.yaml"),
        "http": FAST_HTTP,
        **target,
    }
    return write_tryton_config(
        path, erp, {"customers": CUSTOMERS}, page_size=5, targets={"crm": crm_target}
    )


def sync(config: Path, **options: Any) -> dict[str, Any]:
    return dict(run_sync(load_config(config), RunOptions(trigger="test", **options)))


def states(config: Path) -> dict[str, str | None]:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            c = t.customers
            return {str(s): st for s, st in conn.execute(select(c.c.source_id, c.c.state)).all()}
    finally:
        store.dispose()


def concord_id_of(config: Path, source_id: str) -> str:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            il = t.identity_links
            return str(
                conn.execute(
                    select(il.c.concord_id).where(il.c.source_id == source_id)
                ).scalar_one()
            )
    finally:
        store.dispose()


def crm_status(crm: CrmServer, concord_id: str) -> str | None:
    found = crm.objects["companies"].get(concord_id)
    return None if found is None else found["properties"].get("concord_status", "live")


def test_archived_and_deleted_parties_leave_the_customers_and_are_marked_in_the_crm(
    servers: tuple[TrytonRestServer, CrmServer], tmp_path: Path
) -> None:
    erp, crm = servers
    config = write_config(tmp_path / "concord.yaml", erp, crm)
    sync(config)
    archived, deleted = concord_id_of(config, "3"), concord_id_of(config, "5")
    assert len(crm.objects["companies"]) == len(NAMES)
    erp.edit("party.party", 3, active=False)  # archived in Tryton
    erp.delete("party.party", 5)  # deleted in Tryton
    report = sync(config)
    assert states(config)["3"] == "archived" and states(config)["5"] is None  # no sweep yet
    assert crm_status(crm, archived) == "archived" and crm_status(crm, deleted) == "live"
    assert report["stages"]["push"]["crm"]["retired"] == 1
    swept = sync(config, sweep=True)
    ex = swept["stages"]["extract"]["tryton/customers"]
    assert ex["swept"] == {"listed": len(NAMES) - 1, "tombstoned": 1}  # archived are listed
    assert states(config)["5"] == "deleted"
    assert crm_status(crm, deleted) == "archived"
    live = {k for k, v in states(config).items() if v is None}
    assert live == {str(i) for i in range(1, len(NAMES) + 1)} - {"3", "5"}
    assert swept["stages"]["reconcile"]["all"]["ok"], swept["stages"]["reconcile"]["all"]
    # a quiet night changes nothing: nothing retired twice, nothing swept
    quiet = sync(config)
    assert quiet["stages"]["push"]["crm"]["retired"] == 0
    assert quiet["stages"]["extract"]["tryton/customers"]["swept"] == {}


def test_a_party_restored_in_tryton_is_a_live_customer_again(
    servers: tuple[TrytonRestServer, CrmServer], tmp_path: Path
) -> None:
    erp, crm = servers
    config = write_config(tmp_path / "concord.yaml", erp, crm)
    sync(config)
    before = concord_id_of(config, "4")
    erp.edit("party.party", 4, active=False)
    sync(config)
    assert states(config)["4"] == "archived"
    assert crm_status(crm, before) == "archived"
    erp.edit("party.party", 4, active=True)
    sync(config)
    assert states(config)["4"] is None
    gid = concord_id_of(config, "4")
    assert gid == before  # the same customer, not a second CRM record
    assert len(crm.objects["companies"]) == len(NAMES)
    assert crm.objects["companies"][gid]["properties"]["name"] == NAMES[3]
    assert crm_status(crm, gid) == "live"  # the retirement mark is cleared
    quiet = sync(config)
    assert quiet["stages"]["push"]["crm"]["planned"] == 0  # and not sent again every night


def test_retire_archive_archives_the_crm_record(
    servers: tuple[TrytonRestServer, CrmServer], tmp_path: Path
) -> None:
    erp, crm = servers
    config = write_config(tmp_path / "concord.yaml", erp, crm, retire="archive")
    sync(config)
    gid = concord_id_of(config, "7")
    erp.delete("party.party", 7)
    report = sync(config, sweep=True)
    assert report["stages"]["push"]["crm"]["retired"] == 1
    assert gid not in crm.objects["companies"]  # the sandbox drops an archived object
    assert len(crm.objects["companies"]) == len(NAMES) - 1


def test_a_sweep_that_would_delete_most_records_is_refused(
    servers: tuple[TrytonRestServer, CrmServer], tmp_path: Path
) -> None:
    erp, crm = servers
    config = write_config(tmp_path / "concord.yaml", erp, crm)
    sync(config)
    for i in range(1, 12):
        erp.delete("party.party", i)
    with pytest.raises(ConcordError):
        sync(config, sweep=True)
    store = Store(load_config(config).store_url)
    try:
        run = store.last_runs(1)[0]
    finally:
        store.dispose()
    error = run["report"]["stages"]["extract"]["tryton/customers"]["error"]
    assert "would delete 11 of 12" in error and "refused" in error
    assert all(v is None for v in states(config).values())
