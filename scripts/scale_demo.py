"""Scale-out shown on this machine: the concord DAG on Airflow's CeleryExecutor with two workers.

Starts the sandbox ERP and two sandbox CRMs on loopback, creates its own PostgreSQL databases
(Airflow metadata, the Airflow run's concord store, the embedded run's store), runs Airflow's
api-server, scheduler, dag-processor and two Celery workers (Redis broker), lets the scheduler
run the latest night with orders, shipments, invoices and payments each sharded into time
windows, then runs the same night with the embedded CLI pipeline and compares store and CRM
state. Writes
``bench/results/scale_out.md`` (tasks per worker from the task instances, equality checks,
timings) and stops everything it started, also on failure. ``make scale-demo`` runs it.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), Redis on 127.0.0.1:6379 and
``apache-airflow-providers-celery``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from concord.airflow.plan import TaskItem, TaskPlan, plan_tasks, task_id_for  # noqa: E402
from concord.airflow.tasks import concord_run_id  # noqa: E402
from concord.config import absolute_paths, load_config  # noqa: E402
from concord.pipeline import RunOptions, run_sync  # noqa: E402
from concord.store import Store  # noqa: E402
from concord.store import tables as t  # noqa: E402
from sandbox.crm import CrmServer  # noqa: E402
from sandbox.erp_data import ErpDataset  # noqa: E402
from sandbox.rest_erp import RestErpServer  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ASYNC = "postgresql+psycopg_async://postgres@127.0.0.1:5432"  # psycopg 3, no asyncpg needed
REDIS_URL = "redis://127.0.0.1:6379"


@dataclass(frozen=True)
class Names:
    """The databases and the Redis database of one demo (a suffix keeps concurrent ones apart)."""

    suffix: str = ""
    redis_db: int = 7

    @property
    def airflow(self) -> str:
        return f"concord_airflow{self.suffix}"

    @property
    def store(self) -> str:
        return f"concord_scale{self.suffix}"

    @property
    def single(self) -> str:
        return f"concord_scale_single{self.suffix}"

    @property
    def redis(self) -> str:
        return f"{REDIS_URL}/{self.redis_db}"

    @property
    def databases(self) -> tuple[str, str, str]:
        return self.airflow, self.store, self.single


DAG_ID = "concord_nightly"
SHARDED = {"orders": 4, "shipments": 4, "invoices": 4, "payments": 4}
POOL, POOL_SLOTS = "erp_api", 4
WORKERS = ("worker-1", "worker-2")
ERP_TOKEN, CRM_TOKEN = "sandbox-erp-token", "sandbox-crm-token"
REPORT = REPO / "bench" / "results" / "scale_out.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _recreate_databases(*names: str) -> None:
    engine = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _drop_databases(*names: str) -> None:
    engine = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _write_config(folder: Path) -> Path:
    """The repo's REST ERP source and CRM target, with large entities sharded, in one pool."""
    data = absolute_paths(yaml.safe_load((REPO / "concord.yaml").read_text()), REPO)
    source = data["sources"]["sandbox_erp"]
    source["pool"] = POOL
    for name, entity in source["entities"].items():
        if name in SHARDED:
            entity["shards"] = {"count": SHARDED[name], "since": "2022-01-01T00:00:00Z"}
    data["sources"] = {"sandbox_erp": source}
    data["targets"] = {"sandbox_crm": data["targets"]["sandbox_crm"]}
    path = folder / "concord.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM an Airflow process when this script dies.

    Without it a killed demo (a test's timeout) leaves schedulers and workers holding
    PostgreSQL connections until the server refuses new clients. libc is loaded here, in the
    parent, so the forked child only makes the one system call.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM ends the demo through its ``finally`` blocks, which stop every process it started."""
    raise SystemExit(128 + signum)


@dataclass
class Processes:
    """Airflow processes started by this script, each in its own process group."""

    logs: Path
    env: dict[str, str]
    started: list[tuple[str, subprocess.Popen[bytes]]]

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own venv's airflow
            [str(Path(sys.executable).parent / "airflow"), *args],
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent_hook(),
        )
        self.started.append((name, proc))

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr}")
    return done.stdout


@contextmanager
def _airflow_cluster(
    home: Path, config: Path, erp_url: str, crm_url: str, names: Names
) -> Iterator[Processes]:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "concord.airflow.settings.worker_hostname",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "concord-scale-demo-secret",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{names.airflow}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"{PG_ASYNC}/{names.airflow}",
        "AIRFLOW__CELERY__BROKER_URL": names.redis,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG}/{names.airflow}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "CONCORD_CONFIG": str(config),
        "CONCORD_STORE_URL": f"{PG}/{names.store}",
        "CONCORD_SANDBOX_ERP_URL": erp_url,
        "CONCORD_SANDBOX_CRM_URL": crm_url,
        "CONCORD_DAG_RETRIES": "1",
        "CONCORD_DAG_RETRY_DELAY_SECONDS": "5",
        "SANDBOX_ERP_TOKEN": ERP_TOKEN,
        "SANDBOX_CRM_TOKEN": CRM_TOKEN,
    }
    env.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "set", POOL, str(POOL_SLOTS), "sandbox ERP API slots")
    procs = Processes(home / "logs", env, [])
    procs.logs.mkdir(parents=True, exist_ok=True)
    try:
        procs.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        procs.start("scheduler", "scheduler")
        procs.start("dag-processor", "dag-processor")
        for name in WORKERS:
            procs.start(
                name,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                "2",
                CONCORD_WORKER_NAME=name,
            )
        yield procs
    finally:
        procs.stop()


def _wait_for(what: str, check: Any, procs: Processes, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        value = check()
        if value:
            return value
        time.sleep(2)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s (logs: {procs.logs})")


def _airflow_run(procs: Processes, meta: sa.Engine) -> dict[str, Any]:
    def dag_parsed() -> bool:
        with meta.connect() as conn:
            broken = conn.execute(
                sa.text("SELECT filename, stacktrace FROM import_error WHERE filename LIKE :f"),
                {"f": "%concord_nightly%"},
            ).first()
            if broken:  # fail at once with Airflow's own reason, not after the parse timeout
                raise RuntimeError(
                    f"the DAG {broken.filename} does not import:\n{broken.stacktrace}"
                )
            return bool(
                conn.execute(sa.text("SELECT 1 FROM dag WHERE dag_id = :d"), {"d": DAG_ID}).first()
            )

    _wait_for("the dag-processor to parse the DAG", dag_parsed, procs, 180)
    started = time.monotonic()

    def finished() -> tuple[str, str, datetime] | None:
        with meta.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT run_id, state, data_interval_end FROM dag_run WHERE dag_id = :d "
                    "ORDER BY id LIMIT 1"
                ),
                {"d": DAG_ID},
            ).first()
        if row and row.state in ("success", "failed"):
            return str(row.run_id), str(row.state), row.data_interval_end
        return None

    # Unpaused with catchup off, the scheduler itself starts the latest nightly interval.
    run_id, state, interval_end = _wait_for("the nightly DAG run to finish", finished, procs, 900)
    elapsed = time.monotonic() - started
    with meta.connect() as conn:
        tis = [
            dict(r._mapping)
            for r in conn.execute(
                sa.text(
                    "SELECT task_id, map_index, hostname, queue, pool, state, try_number, "
                    "start_date, end_date FROM task_instance "
                    "WHERE dag_id = :d AND run_id = :r ORDER BY start_date"
                ),
                {"d": DAG_ID, "r": run_id},
            )
        ]
    return {
        "run_id": run_id,
        "state": state,
        "seconds": elapsed,
        "tis": tis,
        "window_end": interval_end,
    }


def _store_digest(url: str) -> dict[str, Any]:
    """What must be equal between the two runs: staged, canonical, golden and 360 content."""
    store = Store(url)
    digest: dict[str, Any] = {}
    with store.engine.connect() as conn:
        raw = t.raw_records
        digest["raw_records"] = sorted(
            conn.execute(select_(raw.c.source, raw.c.entity, raw.c.source_id, raw.c.hash)).all()
        )
        for name, table in t.CANONICAL_TABLES.items():
            digest[name] = sorted(
                conn.execute(select_(table.c.source, table.c.source_id, table.c.hash)).all()
            )
        c360 = t.customer360_daily
        digest["customer360"] = sorted(
            conn.execute(select_(c360.c.concord_id, c360.c.content_hash)).all()
        )
        links = t.identity_links
        digest["identity_links"] = sorted(
            conn.execute(select_(links.c.source, links.c.source_id, links.c.concord_id)).all()
        )
        wm = t.watermarks
        digest["watermarks"] = sorted(conn.execute(select_(wm.c.entity, wm.c.cursor)).all())
    store.dispose()
    return digest


def select_(*cols: Any) -> Any:
    return sa.select(*cols)


def _crm_state(crm: CrmServer) -> dict[str, dict[str, Any]]:
    """Every object the CRM holds (companies and, for persons, contacts) by concord id."""
    return {
        f"{kind}:{key}": dict(o["properties"])
        for kind, objects in crm.objects.items()
        for key, o in objects.items()
    }


def _item_label(plan: TaskPlan, task_id: str, map_index: int) -> str:
    """What a mapped task instance worked on, e.g. ``sandbox_erp/orders#2/4``."""
    groups: dict[str, Sequence[TaskItem]] = {
        task_id_for("extract", pool): items for pool, items in plan.extract.items()
    }
    groups["map"] = plan.map
    groups.update({task_id_for("push", pool): items for pool, items in plan.push.items()})
    items = groups.get(task_id)
    if items is None or map_index < 0 or map_index >= len(items):
        return "-"
    return items[map_index].scope


def _report(
    plan: TaskPlan,
    airflow: dict[str, Any],
    embedded_seconds: float,
    store_equal: dict[str, tuple[int, bool]],
    crm_equal: bool,
    crm_count: int,
    dataset: ErpDataset,
    customers: int,
) -> str:
    tis = airflow["tis"]
    per_worker = Counter(ti["hostname"] for ti in tis if ti["hostname"])
    extract = [ti for ti in tis if ti["task_id"].startswith("extract")]
    extract_per_worker = Counter(ti["hostname"] for ti in extract)
    lines = [
        "# Scale-out: the concord DAG on Airflow's CeleryExecutor, two workers",
        "",
        f"Generated by `make scale-demo` (`scripts/scale_demo.py`) on {datetime.now(UTC):%F %T} "
        f"UTC, {os.cpu_count()} cores. Airflow {_airflow_version()} with the CeleryExecutor: "
        "api-server, scheduler, dag-processor and two Celery workers (`worker-1`, `worker-2`, "
        "concurrency 2 each) on this machine; metadata and concord store on the local "
        "PostgreSQL, Redis as broker. The sandbox ERP holds "
        f"{customers} customers, {dataset.count('orders')} orders, "
        f"{dataset.count('shipments')} shipments, {dataset.count('invoices')} invoices, "
        f"{dataset.count('payments')} payments; orders, shipments, invoices and payments are "
        f"extracted in {', '.join(f'{e} x{n}' for e, n in SHARDED.items())} time-window shards "
        f"through the `{POOL}` pool ({POOL_SLOTS} slots).",
        "",
        f"- Airflow run `{airflow['run_id']}` (concord run "
        f"`{concord_run_id(airflow['run_id'], DAG_ID)}`): **{airflow['state']}** in "
        f"{airflow['seconds']:.1f} s from the DAG being parsed to the run finishing (the scheduler "
        f"started the latest nightly interval itself, ending {airflow['window_end']:%F %H:%M}; "
        "scheduling latency included).",
        f"- Embedded CLI run (`run_sync`, one process), same night: {embedded_seconds:.1f} s.",
        f"- CRM state equal: **{'yes' if crm_equal else 'NO'}** ({crm_count} objects: "
        "companies, and contacts for persons).",
        "- Store state equal: **"
        + ("yes" if all(eq for _, eq in store_equal.values()) else "NO")
        + "** ("
        + ", ".join(f"{k} {n}{'' if eq else ' DIFFERENT'}" for k, (n, eq) in store_equal.items())
        + " rows).",
        "",
        "## Task instances per worker",
        "",
        "| worker (hostname) | all tasks | extract tasks |",
        "|---|---:|---:|",
    ]
    for host in sorted(per_worker):
        lines.append(f"| {host} | {per_worker[host]} | {extract_per_worker.get(host, 0)} |")
    lines += [
        "",
        "## Every task instance",
        "",
        "| task | map index | works on | worker | queue | pool | state | try | seconds |",
        "|---|---:|---|---|---|---|---|---:|---:|",
    ]
    for ti in tis:
        secs = (
            f"{(ti['end_date'] - ti['start_date']).total_seconds():.2f}"
            if ti["start_date"] and ti["end_date"]
            else "-"
        )
        lines.append(
            f"| {ti['task_id']} | {ti['map_index']} | "
            f"{_item_label(plan, ti['task_id'], ti['map_index'])} | {ti['hostname'] or '-'} | "
            f"{ti['queue']} | "
            f"{ti['pool']} | {ti['state']} | {ti['try_number']} | {secs} |"
        )
    lines += [
        "",
        "Equality is checked on: raw staging (source, entity, id, payload hash), every canonical "
        "table (source, id, row hash), identity links, customer-360 content hashes, watermarks, "
        "and the CRM's objects (companies, and contacts for persons) with their properties by "
        "concord id.",
        "",
    ]
    return "\n".join(lines)


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--keep", action="store_true", help="Keep the databases and logs.")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--name-suffix", default="", help="Suffix of the demo's databases.")
    parser.add_argument("--redis-db", type=int, default=7, help="Redis database for Celery.")
    args = parser.parse_args(argv)
    names = Names(args.name_suffix, args.redis_db)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    work = Path(tempfile.mkdtemp(prefix="concord-scale-"))
    ok = False
    dataset = ErpDataset.generate(seed=11, customers=args.customers)
    _recreate_databases(*names.databases)
    import redis

    redis.Redis.from_url(names.redis).flushdb()
    try:
        with ExitStack() as stack:
            erp = stack.enter_context(RestErpServer(dataset, token=ERP_TOKEN))
            crm_airflow = stack.enter_context(CrmServer(token=CRM_TOKEN))
            crm_single = stack.enter_context(CrmServer(token=CRM_TOKEN))
            config = _write_config(work)
            print(f"sandbox ERP {erp.url}; Airflow home {work}", flush=True)
            with _airflow_cluster(work, config, erp.url, crm_airflow.url, names) as procs:
                meta = sa.create_engine(f"{PG}/{names.airflow}")
                airflow = _airflow_run(procs, meta)
                meta.dispose()
            print(f"Airflow run {airflow['state']} in {airflow['seconds']:.1f}s", flush=True)

            os.environ.update(
                {
                    "CONCORD_STORE_URL": f"{PG}/{names.single}",
                    "CONCORD_SANDBOX_ERP_URL": erp.url,
                    "CONCORD_SANDBOX_CRM_URL": crm_single.url,
                    "SANDBOX_ERP_TOKEN": ERP_TOKEN,
                    "SANDBOX_CRM_TOKEN": CRM_TOKEN,
                }
            )
            started = time.monotonic()
            run_sync(
                load_config(config),
                RunOptions(window_end=airflow["window_end"], trigger="scale-demo"),
            )
            embedded_seconds = time.monotonic() - started

            a, b = _store_digest(f"{PG}/{names.store}"), _store_digest(f"{PG}/{names.single}")
            store_equal = {k: (len(a[k]), a[k] == b[k]) for k in a}
            crm_equal = _crm_state(crm_airflow) == _crm_state(crm_single)
            text = _report(
                plan_tasks(load_config(config)),
                airflow,
                embedded_seconds,
                store_equal,
                crm_equal,
                len(_crm_state(crm_airflow)),
                dataset,
                args.customers,
            )
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(text)
        ok = (
            airflow["state"] == "success"
            and crm_equal
            and all(eq for _, eq in store_equal.values())
            and len({ti["hostname"] for ti in airflow["tis"] if ti["hostname"]}) >= 2
        )
        return 0 if ok else 1
    finally:
        if ok and not args.keep:
            _drop_databases(*names.databases)
            shutil.rmtree(work, ignore_errors=True)
        else:  # a failed demo keeps what explains it
            print(
                f"kept the Airflow home and logs in {work} (databases "
                f"{', '.join(names.databases)})",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
