"""The dlt peer: dlt's `rest_api` source pulling the same bench ERP servers into SQLite or
PostgreSQL.

dlt lives in its own venv (var/dlt-venv, created on first use with `pip install
dlt[sqlalchemy,postgres] psutil`) so its dependencies never mix with concord's; `run_peer` writes
the job's config, runs bench/peer_dlt_job.py there in a child process and returns its figures.
On PostgreSQL the peer uses dlt's own postgres destination with its fastest loader (CSV files
through COPY) into a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.generate import BENCH_ENTITIES, SOURCES

REPO = Path(__file__).resolve().parent.parent
DLT_VENV = Path(os.environ.get("BENCH_DLT_VENV") or REPO / "var" / "dlt-venv")
DLT_REQUIREMENT = "dlt[sqlalchemy,postgres]"


def dlt_python(log: Any = print) -> Path:
    """The dlt venv's interpreter, creating the venv (or adding the postgres extra) as needed."""
    python = DLT_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {DLT_VENV} with {DLT_REQUIREMENT}")
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import dlt, psutil, psycopg2, sqlalchemy"], capture_output=True
    )
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", DLT_REQUIREMENT, "psutil"],
            check=True,
            capture_output=True,
        )
    return python


def run_peer(
    directory: Path,
    urls: dict[str, str],
    token: str,
    log: Any = print,
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """Run the dlt job against `urls` (source -> base URL); return records, seconds, RSS.

    ``postgres_url``: load into PostgreSQL (a fresh schema, dropped after) instead of SQLite.
    """
    python = dlt_python(log)
    database = directory / "dlt_peer.db"
    database.unlink(missing_ok=True)
    pipelines = directory / "dlt_pipelines"
    subprocess.run(["rm", "-rf", str(pipelines)], check=True)
    cfg: dict[str, Any] = {
        "sources": {s: urls[s] for s in SOURCES},
        "entities": list(BENCH_ENTITIES),
        "token": token,
        "database_url": f"sqlite:///{database}",
        "pipelines_dir": str(pipelines),
    }
    if postgres_url is not None:
        url = make_url(postgres_url).set(drivername="postgresql")
        if url.password is None:  # dlt insists on one; trust auth ignores it
            url = url.set(password="unused")  # noqa: S106
        cfg["postgres_url"] = url.render_as_string(hide_password=False)
        cfg["dataset"] = f"dlt_peer_{uuid.uuid4().hex[:8]}"
    cfg_path = directory / "dlt_peer.json"
    cfg_path.write_text(json.dumps(cfg))
    result = subprocess.run(
        [str(python), str(REPO / "bench" / "peer_dlt_job.py"), str(cfg_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=directory,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dlt job failed ({result.returncode}): {result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    data["destination"] = (
        "PostgreSQL (dlt postgres destination, CSV through COPY)"
        if postgres_url is not None
        else "SQLite (dlt sqlalchemy destination)"
    )
    data["settings"] = (
        "cursor paginator, limit=1000, parallelized resources, EXTRACT__WORKERS=4, "
        "NORMALIZE__WORKERS=2, DATA_WRITER__BUFFER_MAX_ITEMS=10000"
    )
    return data
