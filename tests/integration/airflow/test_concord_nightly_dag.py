"""The Airflow DAG built from the pipeline config: integrity (imports, schedule, task graph) and
``dag.test()`` runs end to end against the sandbox ERP and CRM on loopback, with the store on
SQLite and on PostgreSQL. One module, one process: Airflow is configured (home, SQLite metadata DB,
dags folder, no examples) before it is first imported, by a session fixture.

The config under test is the repo's ``concord.yaml`` with the orders entity split into three
time-window shards and the CRM token read from an Airflow Connection kept in Airflow's metadata DB.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.repo_config import repo_config_data

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[3]
DAG_ID = "concord_nightly"
NIGHT_1 = datetime(2026, 11, 2, 2, tzinfo=UTC)  # interval [11-01 02:00, 11-02 02:00)
NIGHT_2 = datetime(2026, 11, 3, 2, tzinfo=UTC)
ERP_TOKEN = "sandbox-erp-token"
CRM_TOKEN = "sandbox-crm-token"
SHARDS = 3


def _test_config(folder: Path) -> Path:
    """concord.yaml's REST ERP and CRM: absolute mapping paths, sharded orders, CRM token from a
    Connection."""
    data = repo_config_data()
    data["sources"] = {"sandbox_erp": data["sources"]["sandbox_erp"]}
    data["targets"] = {"sandbox_crm": data["targets"]["sandbox_crm"]}
    data["sources"]["sandbox_erp"]["entities"]["orders"]["shards"] = {
        "count": SHARDS,
        "since": "2024-01-01T00:00:00Z",
    }
    crm = data["targets"]["sandbox_crm"]
    crm["auth"] = {"type": "bearer", "token": {"connection": "sandbox_crm"}}
    path = folder / "concord.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Configure Airflow for this process, then create its metadata DB."""
    if importlib.util.find_spec("airflow") is None:
        pytest.skip("apache-airflow is not installed")
    home = tmp_path_factory.mktemp("airflow_home")
    config = _test_config(home)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "CONCORD_CONFIG": str(config),
        # two retries with no delay: fatal failures must not spend them, retriable ones may
        "CONCORD_DAG_RETRIES": "2",
        "CONCORD_DAG_RETRY_DELAY_SECONDS": "0",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from airflow.models import Connection
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.initdb()
    # In Airflow's metadata DB only (not the environment): tasks can only find it through
    # BaseHook.get_connection, which is what concord.secrets must use inside a task.
    with create_session() as session:
        session.add(Connection(conn_id="sandbox_crm", conn_type="http", password=CRM_TOKEN))
    try:
        yield config
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def dagbag(airflow_env: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture
def dataset() -> ErpDataset:
    return ErpDataset.generate(seed=7, customers=40)


@pytest.fixture
def servers(
    dataset: ErpDataset, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RestErpServer, CrmServer]]:
    with (
        RestErpServer(dataset, token=ERP_TOKEN) as erp,
        CrmServer(token=CRM_TOKEN) as crm,
    ):
        monkeypatch.setenv("CONCORD_SANDBOX_ERP_URL", erp.url)
        monkeypatch.setenv("CONCORD_SANDBOX_CRM_URL", crm.url)
        monkeypatch.setenv("SANDBOX_ERP_TOKEN", ERP_TOKEN)
        yield erp, crm


def _run(dagbag: Any, logical_date: datetime, conf: dict[str, Any] | None = None) -> Any:
    dag = dagbag.get_dag(DAG_ID)
    return dag.test(logical_date=logical_date, run_conf=conf)


def _crm_state(crm: CrmServer) -> dict[str, dict[str, Any]]:
    """Company and contact properties by concord id (what the CRM holds, without its own
    timestamps); persons are pushed as contacts."""
    return {
        obj["properties"]["concord_id"]: {
            k: v for k, v in obj["properties"].items() if not k.startswith("hs_")
        }
        for kind in ("companies", "contacts")
        for obj in crm.objects[kind].values()
    }


def _task_states(run: Any) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


# -- integrity ----------------------------------------------------------------------------------


def test_dag_folder_imports_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dag_ids


def test_dag_runs_nightly_at_two_over_a_data_interval(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 2 * * *"
    assert dag.max_active_runs == 1
    assert dag.catchup is False


def test_task_graph_runs_stages_in_order_with_mapped_extract_map_and_push(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    order = [
        "begin",
        "extract",
        "commit_shards",
        "map",
        "resolve",
        "build_360",
        "push",
        "reconcile",
        "finish",
    ]
    assert set(dag.task_ids) == set(order)
    for before, after in itertools.pairwise(order):
        assert dag.get_task(after).upstream_task_ids == {before}, after
    for mapped in ("extract", "map", "push"):
        assert type(dag.get_task(mapped)).__name__.endswith("MappedOperator"), mapped
    items = dag.get_task("extract").op_kwargs_expand_input.value["item"]
    orders = [i for i in items if i["entity"] == "orders"]
    assert [i["shard"] for i in orders] == list(range(SHARDS))
    assert len(items) == 4 + SHARDS  # four whole entities + the sharded one
    assert dag.get_task("finish").trigger_rule == "all_done"
    assert dag.get_task("extract").retry_exponential_backoff


# -- dag.test() end to end ----------------------------------------------------------------------


def test_nightly_run_syncs_the_sandbox_into_the_crm_like_the_cli(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    dataset: ErpDataset,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, crm = servers
    monkeypatch.setenv("CONCORD_STORE_URL", store_url)
    run = _run(dagbag, NIGHT_1)
    assert str(run.state) == "success", _task_states(run)

    store = Store(store_url)
    with store.engine.connect() as conn:
        runs = conn.execute(select(t.runs.c.run_id, t.runs.c.status, t.runs.c.trigger)).all()
        shards = conn.execute(
            select(t.shard_watermarks.c.shard, t.shard_watermarks.c.status).where(
                t.shard_watermarks.c.entity == "orders"
            )
        ).all()
        golden = conn.execute(select(t.customer360.c.concord_id)).scalars().all()
    assert [(r.status, r.trigger) for r in runs] == [("succeeded", "airflow")]
    assert sorted(shards) == [(f"{i}/{SHARDS}", "done") for i in range(SHARDS)]
    assert store.watermark("sandbox_erp", "orders").cursor is not None
    report = store.run(runs[0].run_id)
    assert report is not None
    assert report["report"]["stages"]["extract"]["sandbox_erp/orders"]["records"] == (
        dataset.count("orders")
    )
    assert set(_crm_state(crm)) == set(golden)

    # the embedded CLI run on its own store and CRM ends in the same CRM state
    from concord.config import load_config
    from concord.pipeline import RunOptions, run_sync

    with CrmServer(token=CRM_TOKEN) as cli_crm:
        monkeypatch.setenv("CONCORD_SANDBOX_CRM_URL", cli_crm.url)
        connection = json.dumps({"conn_type": "http", "password": CRM_TOKEN})
        monkeypatch.setenv("AIRFLOW_CONN_SANDBOX_CRM", connection)  # the CLI's fallback
        monkeypatch.setenv("CONCORD_STORE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
        config = load_config(os.environ["CONCORD_CONFIG"])
        run_sync(config, RunOptions(window_end=run.data_interval_end))
        assert _crm_state(cli_crm) == _crm_state(crm)


def test_rerunning_a_night_sends_nothing_and_the_next_night_sends_the_change(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    dataset: ErpDataset,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, crm = servers
    monkeypatch.setenv("CONCORD_STORE_URL", sqlite_url)
    assert str(_run(dagbag, NIGHT_1).state) == "success"
    first = _crm_state(crm)
    calls = len(crm.batches)

    assert str(_run(dagbag, NIGHT_1).state) == "success"
    assert _crm_state(crm) == first
    assert len(crm.batches) == calls  # nothing changed, nothing sent

    names = {props["name"] for props in first.values() if "name" in props}  # companies
    customer = next(c for c in dataset.iter_all("customers") if c.get("company") in names)
    dataset.update(
        "customers",
        customer["id"],
        at=datetime(2026, 11, 2, 12, tzinfo=UTC),
        company="Renamed Overnight GmbH",
    )
    night2 = _run(dagbag, NIGHT_2)
    assert str(night2.state) == "success"
    sent = [i["properties"].get("name") for b in crm.batches[calls:] for i in b["inputs"]]
    assert sent.count("Renamed Overnight GmbH") == 1, (customer, sent)
    assert len(_crm_state(crm)) == len(first)  # updated in place, no duplicates
    store = Store(sqlite_url)
    last = store.last_runs(1)[0]
    assert last["window_start"] is not None  # incremental: the second night pulled a window
    assert last["report"]["stages"]["extract"]["sandbox_erp/customers"]["records"] < (
        dataset.count("customers")
    )


@pytest.fixture
def night_store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite store the DAG's tasks use."""
    monkeypatch.setenv("CONCORD_STORE_URL", sqlite_url)
    return sqlite_url


def _tries(run: Any, task_id: str) -> list[tuple[str, int, int]]:
    return [
        (str(ti.state), ti.try_number, ti.max_tries)
        for ti in run.get_task_instances()
        if ti.task_id == task_id
    ]


def test_a_401_from_the_target_fails_the_push_once_with_its_message_and_no_retries(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    night_store: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Airflow looks in the environment before its metadata DB: this shadows the good token.
    monkeypatch.setenv("AIRFLOW_CONN_SANDBOX_CRM", '{"conn_type": "http", "password": "wrong"}')
    run = _run(dagbag, NIGHT_1)
    assert str(run.state) == "failed"
    assert _tries(run, "push") == [("failed", 1, 2)]  # two retries allowed, none spent
    assert _task_states(run)["finish"] == ["failed"]
    store = Store(night_store)
    last = store.last_runs(1)[0]
    assert last["status"] == "failed"
    assert "push sandbox_crm" in last["report"]["error"]
    failed = last["report"]["stages"]["push"]["sandbox_crm"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("concord push failed for target sandbox_crm")
    assert "HTTP 401" in failed["error"] and "authentication refused" in failed["error"]
    assert "wrong" not in failed["error"]
    callback = [r.getMessage() for r in caplog.records if r.name == "concord.dag"]
    assert any(
        m.startswith("concord push failed for target sandbox_crm") and "try 1 of" in m
        for m in callback
    ), callback
    assert any("HTTP 401" in m for m in callback)
    assert not any("wrong" in m for m in callback)
    assert store.lock_holder("sync") is None  # released by finish although the run failed


# -- failures Airflow understands, the sync lock, redaction in the task logger -------------------


def test_a_retriable_failure_is_retried_and_the_night_succeeds(
    dagbag: Any, servers: tuple[RestErpServer, CrmServer], night_store: str
) -> None:
    from sandbox.server import Fault

    _, crm = servers
    upsert = "/crm/v3/objects/companies/batch/upsert"
    crm.faults.append(Fault(status=503, times=5, path=upsert))  # every attempt of the first try
    run = _run(dagbag, NIGHT_1)
    assert str(run.state) == "success", _task_states(run)
    assert _tries(run, "push") == [("success", 2, 2)]
    assert crm.objects["companies"]


def test_a_cli_sync_during_a_dag_run_is_refused_naming_the_run(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    night_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import sys

    from concord.airflow import tasks

    real_resolve = tasks.resolve
    seen: dict[str, Any] = {}

    def resolve_while_a_cli_sync_starts(ctx: Any) -> Any:
        seen["run_id"] = ctx.run_id
        seen["cli"] = subprocess.run(
            [sys.executable, "-m", "concord.cli", "sync", "--config", os.environ["CONCORD_CONFIG"]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        return real_resolve(ctx)

    monkeypatch.setattr(tasks, "resolve", resolve_while_a_cli_sync_starts)
    run = _run(dagbag, NIGHT_1)
    assert str(run.state) == "success", _task_states(run)
    cli = seen["cli"]
    output = " ".join((cli.stdout + cli.stderr).split())  # rich wraps long lines
    assert cli.returncode == 1, output
    assert "another sync holds the 'sync' lock" in output
    assert f"run {seen['run_id']}" in output and f"airflow {DAG_ID}" in output
    store = Store(night_store)
    assert [r["trigger"] for r in store.last_runs(5)] == ["airflow"]  # the CLI wrote nothing
    assert store.lock_holder("sync") is None


def test_a_night_that_finds_the_lock_held_by_the_cli_waits_and_leaves_it(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    night_store: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import timedelta

    erp, _ = servers
    store = Store.open(night_store)
    store.acquire_lock("sync", "cli-20261102", stale_after=timedelta(hours=1), owner="ops:4242")
    run = _run(dagbag, NIGHT_1)
    assert str(run.state) == "failed"
    assert _task_states(run)["begin"] == ["failed"]
    callback = [r.getMessage() for r in caplog.records if r.name == "concord.dag"]
    assert any("begin" in m and "run cli-20261102" in m for m in callback), callback
    assert erp.requests == []  # nothing was pulled
    assert store.lock_holder("sync")["run_id"] == "cli-20261102"  # type: ignore[index]


def test_no_secret_reaches_the_task_logs_of_a_dag_run(
    dagbag: Any,
    servers: tuple[RestErpServer, CrmServer],
    night_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import logging

    import structlog
    from airflow._shared.logging import configure_logging
    from airflow.logging_config import configure_logging as restore_logging

    from concord.airflow import tasks
    from concord.redact import register_secret
    from tests.unit.core.test_log_redaction import (
        BASIC,
        BEARER,
        DB_URL,
        LEAKS,
        OUR_LOGGERS,
        REGISTERED,
        THIRD_PARTY,
    )

    def resolve_logging_secrets(ctx: Any) -> Any:
        register_secret(REGISTERED)
        for name in (*OUR_LOGGERS, *THIRD_PARTY):
            logging.getLogger(name).warning(
                "marker %s %s %s %s %s", name, REGISTERED, BEARER, BASIC, DB_URL
            )
        structlog.get_logger(logger_name="task").warning(
            "marker-task-logger", secret=REGISTERED, header=BEARER, url=DB_URL
        )
        raise RuntimeError(f"cannot reach {DB_URL} with {BASIC} and {REGISTERED}")

    out = io.StringIO()
    configure_logging(output=out, log_level="INFO", colors=False)
    try:
        monkeypatch.setattr(tasks, "resolve", resolve_logging_secrets)
        run = _run(dagbag, NIGHT_1)
    finally:
        restore_logging()
    text = out.getvalue()
    assert str(run.state) == "failed"
    assert "marker-task-logger" in text and "marker concord.dag" in text
    assert "marker urllib3.connectionpool" in text and "RuntimeError: cannot reach" in text
    for leak in LEAKS:
        assert leak not in text, leak
