"""The dlt peer job, run inside its own venv (var/dlt-venv, which has dlt but not concord):
`python bench/peer_dlt_job.py <config.json>` loads every entity of every bench ERP source with
dlt's `rest_api` source (cursor paginator, 1000-record pages, bearer auth, resources in parallel)
into a SQLite database through dlt's sqlalchemy destination (or, with ``postgres_url`` in the
config, into PostgreSQL through dlt's postgres destination loading CSV files with COPY, its
fastest path, in the schema ``dataset``, dropped afterwards), tuned as dlt's performance guide
advises (pages not rows, parallelized resources, normalize workers, larger buffers), then prints
one JSON line: {"records", "seconds", "peak_rss_mb", "version"}."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any


def main(path: str) -> int:
    with open(path) as fh:
        cfg: dict[str, Any] = json.load(fh)
    os.environ.setdefault("NORMALIZE__WORKERS", "2")
    os.environ.setdefault("DATA_WRITER__BUFFER_MAX_ITEMS", "10000")
    os.environ.setdefault("EXTRACT__WORKERS", "4")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt  # type: ignore[import-not-found]
    import psutil
    from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]

    proc = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()
    postgres = cfg.get("postgres_url")
    pipeline = dlt.pipeline(
        pipeline_name="bench_peer",
        pipelines_dir=cfg["pipelines_dir"],
        destination=dlt.destinations.postgres(postgres)
        if postgres
        else dlt.destinations.sqlalchemy(cfg["database_url"]),
        dataset_name=cfg.get("dataset", "peer"),
    )
    sources = []
    for name, url in cfg["sources"].items():
        sources.append(
            rest_api_source(
                {
                    "client": {
                        "base_url": url + "/api/v1/",
                        "auth": {"type": "bearer", "token": cfg["token"]},
                        "paginator": {
                            "type": "cursor",
                            "cursor_path": "next_cursor",
                            "cursor_param": "cursor",
                        },
                    },
                    "resource_defaults": {
                        "primary_key": "id",
                        "write_disposition": "append",
                        "parallelized": True,
                        "endpoint": {"params": {"limit": 1000}, "data_selector": "data"},
                    },
                    "resources": [
                        {"name": f"{name}_{entity}", "endpoint": {"path": entity}}
                        for entity in cfg["entities"]
                    ],
                },
                name=name,
            )
        )
    info = pipeline.run(sources, loader_file_format="csv" if postgres else None)
    seconds = time.perf_counter() - started
    loaded: dict[str, int] = {}
    if postgres:
        import psycopg2  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from psycopg2 import sql  # type: ignore[import-untyped,import-not-found,unused-ignore]

        with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (cfg["dataset"],),
            )
            for (table,) in cur.fetchall():
                name = sql.Identifier(cfg["dataset"], table)
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(name))
                loaded[table] = cur.fetchone()[0]
            for schema in (cfg["dataset"], cfg["dataset"] + "_staging"):
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                cur.execute(drop.format(sql.Identifier(schema)))
    stop.set()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    if postgres:  # normalize's row counts of CSV files are not rows: count what was loaded
        counts = loaded
    records = sum(
        n for table, n in counts.items() if not table.startswith("_dlt") and "__" not in table
    )
    print(
        json.dumps(
            {
                "records": records,
                "seconds": round(seconds, 3),
                "peak_rss_mb": round(peak[0] / 2**20, 1),
                "version": dlt.__version__,
                "row_counts": counts,
                "loads": len(info.loads_ids),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
