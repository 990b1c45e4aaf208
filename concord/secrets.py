"""Resolve secret references (never inline values) to their value, and register them for redaction.

A reference names an environment variable (``{env: NAME}``) or an Airflow Connection
(``{connection: conn_id, field: password}``). Inside Airflow the Connection comes from Airflow's
secrets backends; outside it (the CLI), the same Connection can be given as ``AIRFLOW_CONN_<ID>``
in the environment, in Airflow's URI or JSON form, so one config serves both.
"""

from __future__ import annotations

import json
import os
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, model_validator

from concord.errors import ConfigError
from concord.redact import register_secret

ConnectionField = Literal["password", "login", "host", "token", "extra"]


class SecretRef(BaseModel):
    """Where a secret lives: an environment variable or an Airflow Connection field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    connection: str | None = None
    field: ConnectionField = "password"
    extra_key: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.connection is None):
            raise ValueError("a secret reference needs exactly one of 'env' or 'connection'")
        return self

    def describe(self) -> str:
        """Where the secret is looked up, for messages (never its value)."""
        return f"env {self.env}" if self.env else f"connection {self.connection}.{self.field}"

    def resolve(self) -> str:
        """Return the secret's value, or raise ConfigError saying which reference is unset."""
        value = _from_env(self.env) if self.env else _from_connection(self)
        if not value:
            raise ConfigError(f"secret not found: {self.describe()} is not set")
        register_secret(value)
        return value


def _from_env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None


def _from_connection(ref: SecretRef) -> str | None:
    conn_id = ref.connection or ""
    fields = _airflow_connection(conn_id) or _env_connection(conn_id)
    if fields is None:
        return None
    if ref.field == "extra":
        extra = fields.get("extra") or {}
        return str(extra.get(ref.extra_key or "token", "")) if isinstance(extra, dict) else None
    value = fields.get(ref.field)
    return str(value) if value else None


def _airflow_connection(conn_id: str) -> dict[str, object] | None:
    """Ask Airflow for the Connection when running inside an Airflow task."""
    if "AIRFLOW_CTX_DAG_ID" not in os.environ:
        return None
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # Airflow raises its own not-found type; treat as unset
        return None
    return {
        "password": conn.password,
        "login": conn.login,
        "host": conn.host,
        "token": conn.password,
        "extra": conn.extra_dejson,
    }


def _env_connection(conn_id: str) -> dict[str, object] | None:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    if raw.lstrip().startswith("{"):
        data = json.loads(raw)
        return {
            "password": data.get("password"),
            "login": data.get("login"),
            "host": data.get("host"),
            "token": data.get("password"),
            "extra": data.get("extra") or {},
        }
    parts = urlsplit(raw)
    password = unquote(parts.password) if parts.password else None
    return {
        "password": password,
        "login": unquote(parts.username) if parts.username else None,
        "host": parts.hostname,
        "token": password,
        "extra": {},
    }
