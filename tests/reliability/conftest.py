"""Shared pieces of the reliability suite: sandbox ERP and CRM on loopback, a pipeline config
pointing at them (optionally through fault proxies), and `state()`, the comparable end state of a
sync — canonical rows, identity links, customer-360 rows and CRM objects without run ids and
timestamps — so a faulty or crashed run can be compared with a clean one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer

REPO = Path(__file__).resolve().parents[2]
ERP_TOKEN = "sandbox-erp-token"
CRM_TOKEN = "sandbox-crm-token"
UNTIL = datetime(2026, 11, 2, tzinfo=UTC)
CUSTOMERS = 40
ENTITIES = ("customers", "orders", "shipments", "invoices", "payments")


def write_config(
    path: Path,
    *,
    store_url: str,
    erp_url: str,
    crm_url: str,
    page_size: int = 25,
    batch_size: int = 50,
    attempts: int = 4,
    commit_records: int | None = None,
) -> Path:
    """A pipeline config for the sandbox with fast retries (tests must not wait for backoff).

    ``commit_records``: the extract's ``extract_commit_records`` (1: every page commits).
    """
    http = (
        f"{{timeout: 5, max_attempts: {attempts}, backoff_base: 0.01, backoff_max: 0.05, "
        "retry_after_max: 1}"
    )
    mappings = REPO / "mappings"
    lines = [
        f"store_url: {store_url}",
        "base_currency: EUR",
        'fx_rates: {USD: "0.92", GBP: "1.17"}',
        "reject_ratio: 0.2",
        f"batch_size: {batch_size}",
        *([f"extract_commit_records: {commit_records}"] if commit_records else []),
        "sources:",
        "  sandbox_erp:",
        "    type: rest",
        f"    base_url: {erp_url}",
        "    auth: {type: bearer, token: {env: SANDBOX_ERP_TOKEN}}",
        "    paginator: {type: cursor, cursor_path: next_cursor, cursor_param: cursor, "
        "limit_param: limit}",
        f"    page_size: {page_size}",
        "    records_path: data",
        "    incremental: {start_param: updated_since, end_param: updated_before, format: iso_z}",
        f"    http: {http}",
        "    entities:",
        *(
            f"      {e}: {{path: /api/v1/{e}, mapping: {mappings / 'sandbox_erp' / e}.yaml}}"
            for e in ENTITIES
        ),
        "targets:",
        "  sandbox_crm:",
        "    type: hubspot",
        f"    base_url: {crm_url}",
        "    auth: {type: bearer, token: {env: SANDBOX_CRM_TOKEN}}",
        "    object_type: companies",
        "    id_property: concord_id",
        f"    mapping: {mappings / 'crm' / 'sandbox_crm.yaml'}",
        "    batch_size: 10",
        f"    http: {http}",
        "identity:",
        "  rules: [crossref, tax_id, email]",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Sandbox:
    erp: RestErpServer
    crm: CrmServer
    dataset: ErpDataset


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh seeded ERP and an empty CRM on loopback; always stopped."""
    dataset = ErpDataset.generate(seed=7, customers=CUSTOMERS)
    erp = RestErpServer(dataset, token=ERP_TOKEN)
    try:
        crm = CrmServer(token=CRM_TOKEN)
    except BaseException:
        erp.stop()
        raise
    try:
        yield Sandbox(erp, crm, dataset)
    finally:
        crm.stop()
        erp.stop()


_VOLATILE = {"run_id", "updated_at", "extracted_at", "created_at", "created_run", "updated_run"}


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in _VOLATILE}
    return value


def _rows(store: Store, table: Any, keys: list[str], values: list[str]) -> list[tuple[Any, ...]]:
    cols = [table.c[k] for k in keys + values]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(*(table.c[k] for k in keys))).all()
    return [tuple(_without_volatile(v) for v in row) for row in rows]


def store_state(store_url: str) -> dict[str, Any]:
    """Canonical rows (by content hash), open rejects, identity links with their concord ids and
    customer-360 data, minus run ids and timestamps: equal for equal end states on any database."""
    store = Store(store_url)
    try:
        state: dict[str, Any] = {}
        for name, table in t.CANONICAL_TABLES.items():
            state[name] = _rows(store, table, ["source", "source_id"], ["hash"])
        state["identity_links"] = _rows(
            store, t.identity_links, ["source", "source_id"], ["concord_id", "rule"]
        )
        state["customer360"] = _rows(store, t.customer360, ["concord_id"], ["data"])
        state["customer360_daily"] = _rows(store, t.customer360_daily, ["concord_id"], ["data"])
        rj = t.rejects
        with store.engine.connect() as conn:
            state["open_rejects"] = sorted(
                tuple(r)
                for r in conn.execute(
                    select(rj.c.stage, rj.c.source, rj.c.entity, rj.c.source_id, rj.c.field)
                    .where(rj.c.resolved_run.is_(None))
                    .distinct()
                ).all()
            )
        state["raw_records"] = _rows(
            store, t.raw_records, ["source", "entity", "source_id"], ["hash"]
        )
        state["raw_state"] = _rows(
            store, t.raw_state, ["source", "entity", "source_id"], ["hash", "pending"]
        )
        return state
    finally:
        store.dispose()


def crm_state(crm: CrmServer) -> dict[str, dict[str, Any]]:
    """CRM objects by id property value: their properties (no internal ids or timestamps)."""
    return {
        otype: {key: dict(obj["properties"]) for key, obj in objs.items()}
        for otype, objs in crm.objects.items()
    }


def crm_upserted_ids(crm: CrmServer) -> list[str]:
    """Every concord id the CRM accepted, once per accepted input (duplicates show)."""
    return [str(i.get("id")) for batch in crm.batches for i in batch.get("inputs", [])]


def sync(config_path: Path) -> dict[str, Any]:
    """One sync in this process with the fixed window the clean run used."""
    return run_sync(load_config(config_path), RunOptions(window_end=UNTIL, trigger="test"))


@pytest.fixture(scope="session")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The end state of one clean run: store state, CRM state, accepted upserts."""
    tmp = tmp_path_factory.mktemp("clean")
    url = f"sqlite:///{tmp / 'clean.db'}"
    with (
        RestErpServer(ErpDataset.generate(seed=7, customers=CUSTOMERS), token=ERP_TOKEN) as erp,
        CrmServer(token=CRM_TOKEN) as crm,
    ):
        sync(write_config(tmp / "c.yaml", store_url=url, erp_url=erp.url, crm_url=crm.url))
        return {
            "store": store_state(url),
            "crm": crm_state(crm),
            "upserts": sorted(crm_upserted_ids(crm)),
        }


def assert_same_as_clean(clean: dict[str, Any], store_url: str, crm: CrmServer) -> None:
    """The store and the CRM hold exactly what the clean run left: nothing lost or doubled."""
    state = store_state(store_url)
    for key, rows in clean["store"].items():
        assert state[key] == rows, f"{key} differs from the clean run"
    assert crm_state(crm) == clean["crm"]
    upserts = crm_upserted_ids(crm)
    assert sorted(set(upserts)) == sorted(set(clean["upserts"])), "CRM lost or gained records"
