"""A Tryton 8.2 that people work in while concord pulls it: nothing lost, nothing stale.

Against a real server (``conftest.py``'s seeded template on a private copy) with a page size
small enough to page (two parties a page): edits after every page, a crash mid-entity with an
edit of a record already pulled before the resume, a payment posted against an invoice, an
archived party, a deleted draft sale and a Tryton restart. After each, the store holds what
Tryton holds (ids, names, amounts to pay), the CRM sandbox reflects it, and the restart run
reports zero changed records. Changes are made through Tryton's own API
(``tryton_live_script.py``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from tests.integration.tryton.conftest import (
    REPO,
    TrytonInstall,
    _config_text,
    _free_port,
    _wait_for_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LIVE = Path(__file__).with_name("tryton_live_script.py")
ENTITIES = {
    "customers": ("party.party", "party.yaml", {"page_size": 2}),
    "orders": ("sale.sale", "sale.yaml", {}),
    "invoices": ("account.invoice", "invoice.yaml", {}),
    "payment_lines": ("account.move.line", "payment_line.yaml", {"id_prefix": "line-"}),
}


class LiveTryton:
    """``trytond`` over a private copy of the template; can be stopped and started again."""

    def __init__(self, install: TrytonInstall, work: Path) -> None:
        self.install = install
        self.work = work
        self.database = "live"
        shutil.copyfile(install.template, work / f"{self.database}.sqlite")
        self.port = _free_port()
        self.config = work / "trytond.conf"
        self.config.write_text(_config_text(work, self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        log = (self.work / "trytond.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.install.python.parent / "trytond"), "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def do(self, command: str) -> dict[str, Any]:
        return self.install.script(self.config, self.database, command, LIVE)


@pytest.fixture(scope="module")
def live(
    tryton_install: TrytonInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveTryton]:
    server = LiveTryton(tryton_install, tmp_path_factory.mktemp("tryton-live"))
    server.start()
    mp = pytest.MonkeyPatch()
    mp.setenv("CONCORD_TEST_TRYTON_KEY", str(tryton_install.seed["key"]))
    mp.setenv("CONCORD_TEST_CRM_TOKEN", "crm-token")
    try:
        yield server
    finally:
        mp.undo()
        server.stop()


def write_config(
    work: Path, server: LiveTryton, crm: CrmServer | None = None, *, commit_records: int = 1
) -> Path:
    """The live Tryton config; by default every page commits (the tests edit between pages)."""
    tryton = REPO / "mappings" / "tryton"
    config: dict[str, Any] = {
        "store_url": f"sqlite:///{work / 'concord.db'}",
        "base_currency": "EUR",
        "extract_commit_records": commit_records,
        "sources": {
            "tryton": {
                "type": "rest",
                "profile": "tryton",
                "base_url": server.url,
                "auth": {"token": {"env": "CONCORD_TEST_TRYTON_KEY"}},
                "page_size": 7,
                "entities": {
                    name: {
                        "resource": resource,
                        "mapping": str(tryton / mapping),
                        "cursor_field": "last_modified_at",
                        **extra,
                    }
                    for name, (resource, mapping, extra) in ENTITIES.items()
                },
            }
        },
        "targets": {},
    }
    if crm is not None:
        config["targets"]["crm"] = {
            "type": "hubspot",
            "base_url": crm.url,
            "auth": {"type": "bearer", "token": {"env": "CONCORD_TEST_CRM_TOKEN"}},
            "object_type": "companies",
            "id_property": "concord_id",
            "mapping": str(REPO / "mappings" / "crm" / "sandbox_crm.yaml"),
        }
    path = work / "concord.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sync(config: Path, **options: Any) -> dict[str, Any]:
    on_event = options.pop("on_event", None)
    opts = RunOptions(trigger="test", **options)
    return dict(run_sync(load_config(config), opts, on_event=on_event))


def store_state(config: Path) -> dict[str, Any]:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            c, o, inv = t.customers, t.orders, t.invoices
            parties = {
                str(s): n
                for s, n in conn.execute(
                    select(c.c.source_id, c.c.name).where(c.c.state.is_(None))
                ).all()
            }
            sales = sorted(
                str(s)
                for s in conn.execute(select(o.c.source_id).where(o.c.state.is_(None))).scalars()
            )
            opened = {
                str(s): str(a)
                for s, a in conn.execute(
                    select(inv.c.source_id, inv.c.open_amount).where(inv.c.state.is_(None))
                ).all()
            }
            states = dict(conn.execute(select(c.c.source_id, c.c.state)).all())
    finally:
        store.dispose()
    return {"parties": parties, "sales": sales, "open": opened, "states": states}


def assert_store_equals_tryton(config: Path, server: LiveTryton) -> None:
    theirs = server.do("state")
    ours = store_state(config)
    assert ours["parties"] == theirs["parties"]
    assert sorted(ours["sales"], key=int) == sorted(theirs["sales"], key=int)
    assert {k: Decimal(v) for k, v in ours["open"].items()} == {
        k: Decimal(v) for k, v in theirs["open"].items()
    }


def test_edits_after_every_page_and_a_crash_with_an_edit_before_the_resume_lose_nothing(
    live: LiveTryton, tmp_path: Path
) -> None:
    config = write_config(tmp_path, live)
    pulled: list[str] = []
    edits: list[str] = []

    def edit_after_every_page(name: str, data: dict[str, Any]) -> None:
        if name == "page" and data["entity"] == "customers":
            store = Store(load_config(config).store_url)
            try:
                with store.engine.connect() as conn:
                    raw = t.raw_records
                    ids = conn.execute(
                        select(raw.c.source_id).where(raw.c.entity == "customers")
                    ).scalars()
                    pulled[:] = sorted(ids, key=int)
            finally:
                store.dispose()
            target = next(i for i in pulled if i not in edits)  # a party already pulled
            live.do(f"rename:{target}")
            edits.append(target)

    first = sync(config, on_event=edit_after_every_page)
    ex = first["stages"]["extract"]["tryton/customers"]
    assert ex["pages"] >= 5 and len(edits) == ex["pages"]
    assert ex["count_check"] == "agree" and ex["left_window"] == len(edits)
    sync(config)
    assert_store_equals_tryton(config, live)

    class Crash(Exception):
        pass

    pages = 0

    def crash_mid_entity(name: str, data: dict[str, Any]) -> None:
        nonlocal pages
        if name == "page" and data["entity"] == "customers":
            pages += 1
            if pages == 1:
                for party in ("2", "3", "4", "5", "6"):  # on pages one and later
                    live.do(f"rename:{party}")
            if pages == 2:
                raise Crash

    with pytest.raises(Crash):
        sync(config, full_refresh=True, on_event=crash_mid_entity)
    live.do("rename:2")  # already pulled before the crash
    resumed = sync(config, full_refresh=True)
    ex = resumed["stages"]["extract"]["tryton/customers"]
    assert ex["resumed"] and ex["count_check"] == "agree"
    sync(config)
    assert_store_equals_tryton(config, live)


def test_payments_archives_deletes_and_a_restart(live: LiveTryton, tmp_path: Path) -> None:
    with CrmServer(token="crm-token") as crm:
        config = write_config(tmp_path, live, crm)
        sale = live.do("draft_sale:4")["sale"]
        sync(config)
        assert str(sale) in store_state(config)["sales"]
        theirs = live.do("state")
        invoice = theirs["payable"][0]
        party = "7"
        live.do(f"pay:{invoice}:5")
        live.do(f"archive:{party}")
        live.do(f"delete_sale:{sale}")
        report = sync(config, sweep=True)
        extract = report["stages"]["extract"]
        assert extract["tryton/orders"]["swept"]["tombstoned"] == 1
        assert extract["tryton/payment_lines"]["new"] >= 1
        ours = store_state(config)
        assert ours["states"][party] == "archived"
        assert str(sale) not in ours["sales"]
        assert Decimal(ours["open"][invoice]) == Decimal(live.do("state")["open"][invoice])
        assert_store_equals_tryton(config, live)
        store = Store(load_config(config).store_url)
        try:
            with store.engine.connect() as conn:
                il = t.identity_links
                linked = set(conn.execute(select(il.c.source_id)).scalars())
        finally:
            store.dispose()
        assert party not in linked  # no longer a customer
        marked = [
            o
            for o in crm.objects["companies"].values()
            if o["properties"].get("concord_status") == "archived"
        ]
        assert len(marked) == 1
        assert report["stages"]["reconcile"]["all"]["ok"], report["stages"]["reconcile"]["all"]

        live.stop()
        live.start()  # a new server process: a new JSON key order
        after = sync(config, full_refresh=True)
        for scope, body in after["stages"]["extract"].items():
            assert body["new"] + body["changed"] == 0, scope
            assert body.get("revisit_changed", 0) == 0, scope
        assert_store_equals_tryton(config, live)
