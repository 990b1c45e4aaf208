"""The dlt peer: dlt's `rest_api` source pulling the same bench ERP servers into SQLite.

dlt lives in its own venv (var/dlt-venv, created on first use with `pip install dlt[sqlalchemy]
psutil`) so its dependencies never mix with concord's; `run_peer` writes the job's config, runs
bench/peer_dlt_job.py there in a child process and returns its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.generate import BENCH_ENTITIES, SOURCES

REPO = Path(__file__).resolve().parent.parent
DLT_VENV = Path(os.environ.get("BENCH_DLT_VENV") or REPO / "var" / "dlt-venv")
DLT_REQUIREMENT = "dlt[sqlalchemy]"


def dlt_python(log: Any = print) -> Path:
    """The dlt venv's interpreter, creating the venv when missing."""
    python = DLT_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {DLT_VENV} with {DLT_REQUIREMENT}")
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", DLT_REQUIREMENT, "psutil"],
            check=True,
            capture_output=True,
        )
    return python


def run_peer(directory: Path, urls: dict[str, str], token: str, log: Any = print) -> dict[str, Any]:
    """Run the dlt job against `urls` (source -> base URL); return records, seconds, RSS."""
    python = dlt_python(log)
    database = directory / "dlt_peer.db"
    database.unlink(missing_ok=True)
    pipelines = directory / "dlt_pipelines"
    subprocess.run(["rm", "-rf", str(pipelines)], check=True)
    cfg = {
        "sources": {s: urls[s] for s in SOURCES},
        "entities": list(BENCH_ENTITIES),
        "token": token,
        "database_url": f"sqlite:///{database}",
        "pipelines_dir": str(pipelines),
    }
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
    data["destination"] = "SQLite (dlt sqlalchemy destination)"
    data["settings"] = (
        "cursor paginator, limit=1000, parallelized resources, EXTRACT__WORKERS=4, "
        "NORMALIZE__WORKERS=2, DATA_WRITER__BUFFER_MAX_ITEMS=10000"
    )
    return data
