"""Fixtures for push tests: a store seeded with customer-360 rows (no ERP needed), merges as
identity resolution records them, the sandbox CRMs on loopback, and one push run per call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from concord.config import PipelineConfig
from concord.customer360.stored import write_whole
from concord.model import Customer360
from concord.pipeline.context import RunContext, RunOptions, load_mappings, new_run_id
from concord.pipeline.push import push
from concord.pipeline.reports import PushReport
from concord.push.plan import PushPlan, dry_run_plan
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.salesforce_crm import SalesforceServer
from tests.conftest import REPO

NOW = datetime(2026, 11, 1, tzinfo=UTC)
FAST_HTTP = {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10}


def customer(
    gid: str,
    name: str | None = None,
    *,
    email: str | None = None,
    revenue: str = "100",
    is_person: bool = False,
    tier: str = "B",
) -> dict[str, Any]:
    """A valid Customer360 row as stored (JSON mode)."""
    src = f"erp:customers:{gid}"
    row = Customer360(
        concord_id=gid,
        name={"value": name or f"Company {gid}", "source": src},
        email={"value": email, "source": src} if email else None,
        is_person=is_person,
        source_ids=[src],
        country="DE",
        orders_count=3,
        lifetime_revenue=Decimal(revenue),
        value_tier=tier,
        lifecycle_stage="active",
        updated_at=NOW,
    )
    return row.model_dump(mode="json")


def seed(store: Store, *rows: dict[str, Any]) -> None:
    """Write (or rewrite) customer-360 rows and their active golden records."""
    with store.begin() as conn:
        store.upsert(
            conn,
            t.golden,
            [
                {
                    "concord_id": r["concord_id"],
                    "status": "active",
                    "merged_into": None,
                    "created_run": "seed",
                    "updated_run": "seed",
                }
                for r in rows
            ],
            ["concord_id"],
        )
        write_whole(store, conn, rows, "seed", NOW)


def merge(store: Store, absorbed: str, survivor: str) -> None:
    """What identity resolution leaves behind when it merges two golden customers."""
    with store.begin() as conn:
        conn.execute(
            update(t.golden)
            .where(t.golden.c.concord_id == absorbed)
            .values(status="merged", merged_into=survivor, updated_run="merge")
        )
        conn.execute(t.customer360.delete().where(t.customer360.c.concord_id == absorbed))
        day = t.customer360_daily
        conn.execute(day.delete().where(day.c.concord_id == absorbed))
        conn.execute(
            t.identity_events.insert().values(
                run_id="merge",
                kind="merge",
                concord_id=survivor,
                other_id=absorbed,
                detail={},
                created_at=NOW,
            )
        )


def push_states(store: Store, target: str) -> dict[str, dict[str, Any]]:
    from sqlalchemy import select

    with store.engine.connect() as conn:
        rows = conn.execute(select(t.push_state).where(t.push_state.c.target == target))
        return {r["concord_id"]: dict(r) for r in rows.mappings()}


def open_rejects(store: Store) -> list[dict[str, Any]]:
    return [r for r in store.rejects(open_only=True, limit=1000) if r["stage"] == "push"]


@dataclass
class Pusher:
    """Runs push stages against one store with one set of targets, a new run id each time."""

    store: Store
    targets: dict[str, dict[str, Any]]
    reject_ratio: float = 0.5
    runs: list[str] = field(default_factory=list)

    def config(self) -> PipelineConfig:
        cfg = PipelineConfig.model_validate(
            {
                "path": REPO / "concord.yaml",
                "sources": {},
                "targets": self.targets,
                "reject_ratio": self.reject_ratio,
            }
        )
        for name, tcfg in cfg.targets.items():
            tcfg.name = name
        return cfg

    def context(self, *, dry_run: bool = False) -> RunContext:
        cfg = self.config()
        run_id = new_run_id()
        self.runs.append(run_id)
        return RunContext(cfg, self.store, run_id, RunOptions(dry_run=dry_run), load_mappings(cfg))

    def push(self, target: str) -> PushReport:
        return push(self.context(), target)

    def plan(self, target: str) -> PushPlan:
        return dry_run_plan(self.context(dry_run=True), target)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def hubspot() -> Iterator[CrmServer]:
    with CrmServer(token="hubspot-test-token") as server:
        yield server


@pytest.fixture
def salesforce() -> Iterator[SalesforceServer]:
    with SalesforceServer() as server:
        yield server


def hubspot_target(server: CrmServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "hubspot",
        "base_url": server.url,
        "auth": {"type": "bearer", "token": {"env": "TEST_HUBSPOT_TOKEN"}},
        "mapping": "mappings/crm/sandbox_crm.yaml",
        "person_mapping": "mappings/crm/hubspot_contact.yaml",
        "http": FAST_HTTP,
        **extra,
    }


def salesforce_target(server: SalesforceServer, **extra: Any) -> dict[str, Any]:
    return {
        "type": "salesforce",
        "instance_url": server.url,
        "auth": {
            "type": "salesforce_client_credentials",
            "login_url": server.url,
            "client_id": server.client_id,
            "client_secret": {"env": "TEST_SF_SECRET"},
        },
        "mapping": "mappings/crm/salesforce_account.yaml",
        "http": FAST_HTTP,
        **extra,
    }


@pytest.fixture(autouse=True)
def _crm_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HUBSPOT_TOKEN", "hubspot-test-token")
    monkeypatch.setenv("TEST_SF_SECRET", "sandbox-secret")
