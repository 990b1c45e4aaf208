"""Secrets: what counts as one in a config, and resolving references to their registered value.

A reference names an environment variable (``{env: NAME}``) or an Airflow Connection
(``{connection: conn_id, field: password}``). Inside Airflow the Connection comes from Airflow's
secrets backends; outside it (the CLI), the same Connection can be given as ``AIRFLOW_CONN_<ID>``
in the environment, in Airflow's URI or JSON form, so one config serves both.

A value written in the file is refused where it looks like a secret (``inline_secret``): under a
key named like one (``token``, ``password``, ...), a header named like one (``Authorization``,
``X-API-Key``, ``Cookie``, ...) or holding a credential (``Bearer ...``, ``Basic ...``), a query
parameter named like one (``api_key``, ``access_token``, ``signature``, ...), or a URL carrying a
password (``https://user:pw@host``) or such a query parameter. docs/security.md lists them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, model_validator

from concord.errors import ConfigError
from concord.redact import register_secret

ConnectionField = Literal["password", "login", "host", "token", "extra"]

SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "key",
        "private_key",
        "access_token",
        "refresh_token",
    }
)
"""Config keys whose value is a secret: only a reference is allowed there."""

_SECRET_NAME = re.compile(
    r"(^|_)(authorization|auth|password|passwd|pwd|secret|token|apikey|api_key|access_key|"
    r"subscription_key|secret_key|private_key|hapikey|signature|sig|cookie|credentials?|session)"
    r"(_|$)"
)
_CREDENTIAL_VALUE = re.compile(r"(?i)^\s*(bearer|basic|digest|token|negotiate|ntlm)\s+\S")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ENV_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")


def secret_name(name: str) -> bool:
    """Whether a header or query parameter called ``name`` carries a secret."""
    normal = name.lower().replace("-", "_").lstrip("$")
    return normal in SECRET_KEYS or _SECRET_NAME.search(normal) is not None


def url_secret(text: str) -> str | None:
    """What secret a URL carries (a password, a secret query parameter), or None."""
    if not _URL.match(text):
        return None
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return None
    if password:
        return "a URL with a password in it"
    for name, _value in parse_qsl(parts.query, keep_blank_values=False):
        if secret_name(name):
            return f"a URL with a secret query parameter '{name}'"
    return None


def inline_secret(key: str, value: Any, *, parent: str | None = None) -> str | None:
    """Why ``key: value`` written in a config is a secret by value (refused), or None.

    ``parent`` is the key of the mapping holding it: under ``headers`` the name and the value
    are checked as a header, under ``params`` the name as a query parameter.
    """
    if isinstance(value, str):
        for text in (value, *_ENV_DEFAULT.findall(value)):  # a ${VAR:-default} is in the file
            if found := url_secret(text):
                return found
    owner = (parent or "").lower()
    if owner == "headers" and (
        secret_name(key) or (isinstance(value, str) and _CREDENTIAL_VALUE.match(value))
    ):
        return f"header '{key}' holds a credential"
    if owner in ("params", "query") and secret_name(key):
        return f"query parameter '{key}' holds a credential"
    return None


def _refuse(field: str, items: Mapping[str, Any]) -> None:
    for key, value in items.items():
        problem = inline_secret(key, value, parent=field)
        if problem:
            raise ValueError(
                f"{problem}: secrets are never written in the config; use 'auth' "
                "(bearer, basic, api_key with a header or query name) with {env: NAME} "
                "or {connection: id}"
            )


def refuse_inline_headers(cls: type, value: dict[str, str]) -> dict[str, str]:
    """Pydantic validator for a ``headers`` field: refuses credentials written as values."""
    _refuse("headers", value)
    return value


def refuse_inline_params(cls: type, value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic validator for a ``params`` field: refuses secret query parameters."""
    _refuse("params", value)
    return value


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
        """Return the secret's value, or raise ConfigError saying which reference is unset.

        The error names the config file, line and key that refer to the secret when the config
        recorded them as it loaded (``note_reference``).
        """
        value = _from_env(self.env) if self.env else _from_connection(self)
        if not value:
            file, line, key = _references.get(self, (None, None, None))
            raise ConfigError(
                f"secret not found: {self.describe()} is not set", file=file, line=line, key=key
            )
        register_secret(value)
        return value


_references: dict[SecretRef, tuple[str | None, int | None, str | None]] = {}


def note_reference(ref: SecretRef, *, file: str, line: int | None, key: str) -> None:
    """Remember where the config refers to ``ref`` (file, line, key) for the error if unset."""
    _references.setdefault(ref, (file, line, key))


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
