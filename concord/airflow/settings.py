"""DAG-level settings: the schedule from the pipeline config, knobs from ``CONCORD_DAG_*``.

Also where the DAG finds its config (``CONCORD_CONFIG``) and the worker host name callable the
scale-out demo uses to tell several Celery workers on one machine apart.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from concord.config import PipelineConfig
from concord.errors import ConfigError
from concord.utc import parse_time

DEFAULT_DAG_ID = "concord_nightly"


@dataclass(frozen=True)
class DagSettings:
    """DAG-level knobs: from the pipeline config (schedule) and ``CONCORD_DAG_*`` variables."""

    dag_id: str
    schedule: str
    start_date: datetime
    catchup: bool
    retries: int
    retry_delay: timedelta
    max_retry_delay: timedelta
    tags: list[str] = field(default_factory=lambda: ["concord"])


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number") from None


def dag_settings(config: PipelineConfig, env: Mapping[str, str] | None = None) -> DagSettings:
    """The DAG's settings for ``config``; a malformed variable is a ``ConfigError`` naming it."""
    env = os.environ if env is None else env
    start = env.get("CONCORD_DAG_START_DATE") or "2026-01-01T00:00:00Z"
    try:
        start_date = parse_time(start)
    except ValueError:
        raise ConfigError(f"CONCORD_DAG_START_DATE={start!r} is not an ISO time") from None
    return DagSettings(
        dag_id=env.get("CONCORD_DAG_ID") or DEFAULT_DAG_ID,
        schedule=config.schedule or "0 2 * * *",
        start_date=start_date,
        catchup=(env.get("CONCORD_DAG_CATCHUP") or "false").lower() in ("1", "true", "yes"),
        retries=_env_int(env, "CONCORD_DAG_RETRIES", 3),
        retry_delay=timedelta(seconds=_env_int(env, "CONCORD_DAG_RETRY_DELAY_SECONDS", 60)),
        max_retry_delay=timedelta(
            seconds=_env_int(env, "CONCORD_DAG_MAX_RETRY_DELAY_SECONDS", 1800)
        ),
    )


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The pipeline config the DAG is built from: ``CONCORD_CONFIG`` or the repo's concord.yaml."""
    env = os.environ if env is None else env
    raw = env.get("CONCORD_CONFIG")
    return Path(raw) if raw else Path(__file__).resolve().parents[2] / "concord.yaml"


def worker_hostname() -> str:
    """Airflow ``[core] hostname_callable``: ``CONCORD_WORKER_NAME`` when set, else the FQDN.

    Lets several Celery workers on one machine (the scale-out demo) show up as distinct hosts in
    the task instances.
    """
    return os.environ.get("CONCORD_WORKER_NAME") or socket.getfqdn()
