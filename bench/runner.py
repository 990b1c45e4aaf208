"""The benchmark run: generate data, serve it, run the first night and the incremental night.

`run_bench(scale)` generates the seeded data set (bench.generate), starts three REST ERP servers
and the HubSpot-like CRM in subprocesses, writes a pipeline config for them, runs the measured
sync (bench.measure) in a child process twice — the first full night, then after 1% of every
entity changed — scores identity resolution against the known duplicates, optionally runs the dlt
peer on the same sources, and returns everything the report needs as one dict.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import psutil

from bench.generate import (
    BENCH_ENTITIES,
    SCALES,
    SOURCES,
    Scale,
    generate,
    source_path,
    touch_night,
    truth_path,
)

REPO = Path(__file__).resolve().parent.parent
ERP_TOKEN = "bench-erp-token"  # noqa: S105 - sandbox token, not a secret
CRM_TOKEN = "bench-crm-token"  # noqa: S105


def child_env() -> dict[str, str]:
    """Environment for every child: the repo on the path, the sandbox tokens."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["SANDBOX_ERP_TOKEN"] = ERP_TOKEN
    env["SANDBOX_CRM_TOKEN"] = CRM_TOKEN
    return env


def _read_url(proc: subprocess.Popen[str], what: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    stdout: IO[str] | None = proc.stdout
    assert stdout is not None
    while time.monotonic() < deadline:
        line = stdout.readline()
        if line.startswith("listening on "):
            return line.removeprefix("listening on ").strip()
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{what} did not start (exit code {proc.poll()})")


@contextmanager
def servers(directory: Path) -> Iterator[dict[str, str]]:
    """The three ERP servers and the CRM in subprocesses; yields name -> base URL."""
    procs: list[subprocess.Popen[str]] = []
    urls: dict[str, str] = {}
    try:
        for source in SOURCES:
            cmd = [sys.executable, "-m", "bench.serve", "--db", str(source_path(directory, source))]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env())
            procs.append(proc)
            urls[source] = _read_url(proc, f"ERP server {source}")
        cmd = [sys.executable, "-m", "sandbox", "crm", "--port", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env())
        procs.append(proc)
        urls["crm"] = _read_url(proc, "CRM server")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


PAGE_SIZE = 1000


def write_config(
    directory: Path, urls: dict[str, str], store_url: str, extract_concurrency: int | None = None
) -> Path:
    """A pipeline config for the bench sources and CRM (tuned: 1000-record pages and batches)."""
    mappings = REPO / "mappings" / "sandbox_erp"
    lines = [
        "# written by python -m bench",
        f"store_url: {store_url}",
        "base_currency: EUR",
        'fx_rates: {USD: "0.92", GBP: "1.17"}',
        "reject_ratio: 0.1",
        "batch_size: 2000",
        *([f"extract_concurrency: {extract_concurrency}"] if extract_concurrency else []),
        "sources:",
    ]
    for source in SOURCES:
        lines += [
            f"  {source}:",
            "    type: rest",
            f"    base_url: {urls[source]}",
            "    auth: {type: bearer, token: {env: SANDBOX_ERP_TOKEN}}",
            "    paginator: {type: cursor, cursor_path: next_cursor, cursor_param: cursor, "
            "limit_param: limit}",
            f"    page_size: {PAGE_SIZE}",
            "    records_path: data",
            "    incremental: {start_param: updated_since, end_param: updated_before, "
            "format: iso_z}",
            "    http: {timeout: 60, max_attempts: 5}",
            "    entities:",
        ]
        for entity in BENCH_ENTITIES:
            lines.append(
                f"      {entity}: {{path: /api/v1/{entity}, mapping: {mappings / entity}.yaml}}"
            )
    lines += [
        "targets:",
        "  crm:",
        "    type: hubspot",
        f"    base_url: {urls['crm']}",
        "    auth: {type: bearer, token: {env: SANDBOX_CRM_TOKEN}}",
        "    object_type: companies",
        "    id_property: concord_id",
        f"    mapping: {REPO / 'mappings' / 'crm' / 'sandbox_crm.yaml'}",
        "    batch_size: 100",
        "identity:",
        "  rules: [crossref, tax_id, email]",
    ]
    path = directory / "concord.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measured_sync(config: Path, out: Path, as_of: datetime | None = None) -> dict[str, Any]:
    """Run bench.measure in a child process (``as_of``: the run's business moment)."""
    cmd = [sys.executable, "-m", "bench.measure", "--config", str(config), "--out", str(out)]
    if as_of is not None:
        cmd += ["--as-of", as_of.isoformat()]
    result = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measured sync failed ({result.returncode}):\n{result.stderr[-4000:]}")
    data: dict[str, Any] = orjson.loads(out.read_bytes())
    return data


def identity_quality(store_url: str, directory: Path) -> dict[str, Any]:
    """Pairwise precision, recall and F1 of identity links against the generator's truth."""
    from sqlalchemy import create_engine, text

    truth: dict[tuple[str, str], int] = {}
    conn = sqlite3.connect(truth_path(directory))
    for source, rid, company in conn.execute("SELECT source, id, company FROM truth"):
        truth[(source, rid)] = company
    conn.close()
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as store:
        predicted: dict[tuple[str, str], str] = {
            (source, sid): cid
            for source, sid, cid in store.execute(
                text("SELECT source, source_id, concord_id FROM identity_links")
            )
        }
    engine.dispose()
    keys = [k for k in truth if k in predicted]
    both: Counter[tuple[str, int]] = Counter((predicted[k], truth[k]) for k in keys)
    by_pred: Counter[str] = Counter(predicted[k] for k in keys)
    by_truth: Counter[int] = Counter(truth[k] for k in keys)

    def pairs(counter: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    tp, pp, tt = pairs(both), pairs(by_pred), pairs(by_truth)
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "records": len(keys),
        "unlinked_records": len(truth) - len(keys),
        "true_pairs": tt,
        "predicted_pairs": pp,
        "correct_pairs": tp,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "golden_customers": len(by_pred),
        "true_companies": len(by_truth),
    }


def fresh_store(directory: Path, postgres: str | None, scale: str) -> str:
    """An empty store: the SQLite file in the workdir, or a new schema on ``postgres``."""
    if postgres is None:
        store_db = directory / "concord.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store_db}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{store_db}"
    from sqlalchemy import create_engine, text

    url = postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"concord_bench_{scale}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def wire_spec(urls: dict[str, str]) -> dict[str, Any]:
    """What bench.wire pulls: the bench sources' pages as concord's REST sources ask for them."""
    return {
        "sources": {s: urls[s] for s in SOURCES},
        "entities": list(BENCH_ENTITIES),
        "page_size": PAGE_SIZE,
        "token": ERP_TOKEN,
        "window_end": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def wire_ceiling(directory: Path, urls: dict[str, str]) -> dict[str, Any]:
    """bench.wire in a child process: the same pages by a bare requests + orjson loop."""
    spec = wire_spec(urls)
    spec_path, out = directory / "wire-spec.json", directory / "wire.json"
    spec_path.write_bytes(orjson.dumps(spec))
    cmd = [sys.executable, "-m", "bench.wire", "--spec", str(spec_path), "--out", str(out)]
    result = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wire ceiling failed ({result.returncode}):\n{result.stderr[-4000:]}")
    data: dict[str, Any] = orjson.loads(out.read_bytes())
    return data


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy it was."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1_5_15": [round(x, 2) for x in load],
    }


def run_bench(
    scale: Scale,
    *,
    workdir: Path | None = None,
    with_peer: bool = True,
    seed: int = 7,
    log: Any = print,
    postgres: str | None = None,
    extract_concurrency: int | None = None,
) -> dict[str, Any]:
    """Everything `python -m bench` measures, as one dict for the report.

    ``postgres`` (a server URL) puts the store in a fresh schema there instead of SQLite;
    ``extract_concurrency`` overrides the config's default.
    """
    directory = workdir or REPO / "var" / "bench" / scale.name
    directory.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "scale": scale.name,
        "customers": scale.customers,
        "orders": scale.orders,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine_before": machine(),
        "store": "PostgreSQL" if postgres else "SQLite",
        "extract_concurrency": extract_concurrency,
    }
    log(f"generating {scale.name} data set in {directory}")
    started = time.perf_counter()
    result["generated"] = generate(directory, scale, seed)
    result["generate_s"] = round(time.perf_counter() - started, 2)
    store_url = fresh_store(directory, postgres, scale.name)
    with servers(directory) as urls:
        config = write_config(directory, urls, store_url, extract_concurrency)
        log("first night: full sync")
        result["first"] = measured_sync(config, directory / "first.json")
        log("wire ceiling: the same pages by a bare requests + orjson loop")
        result["wire"] = wire_ceiling(directory, urls)
        result["identity"] = identity_quality(store_url, directory)
        changed = touch_night(directory, 0.01, seed)
        result["night_changed"] = changed
        log(f"incremental night: {changed} records changed")
        # the next business day, as a nightly sync runs: every customer's day figures move
        result["night"] = measured_sync(
            config, directory / "night.json", datetime.now(UTC) + timedelta(days=1)
        )
        if with_peer:
            from bench.peer_dlt import run_peer

            log("peer: dlt rest_api on the same sources")
            try:
                result["peer"] = run_peer(
                    directory, urls, ERP_TOKEN, log=log, postgres_url=postgres
                )
            except Exception as exc:  # the peer is optional: report why it did not run
                result["peer"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    log("map ceiling: orjson + the compiled mapping + a raw driver write, against the stage")
    result["map_ceiling"] = map_ceiling(directory, min(scale.orders, MAP_CEILING_ORDERS), postgres)
    result["machine_after"] = machine()
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


MAP_CEILING_ORDERS = 50_000
"""Orders (with their shipments, payments and a fifth as many customers) the map ceiling maps:
enough for a steady rate, few enough to hold the payloads in memory at every scale."""


def map_ceiling(directory: Path, orders: int, postgres: str | None) -> dict[str, Any]:
    """bench.bench_map in a child process, on the bench's store kind; its figures."""
    out = directory / "map-ceiling.json"
    cmd = [sys.executable, "-m", "bench.bench_map", "--orders", str(orders), "--out", str(out)]
    if postgres:
        cmd += ["--postgres", postgres, "--only-postgres"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=REPO)
    if result.returncode != 0:
        return {"error": f"bench_map failed ({result.returncode}): {result.stderr[-1500:]}"}
    found: list[dict[str, Any]] = orjson.loads(out.read_bytes())
    return found[-1]


def scale_named(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise SystemExit(f"unknown scale {name!r}; one of {', '.join(SCALES)}") from None
