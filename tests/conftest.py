"""Shared fixtures: loopback-only network, stores on SQLite and (when configured) PostgreSQL,
the sandbox servers, and a config pointing at them."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CONCORD_TEST_POSTGRES_URL")

os.environ.setdefault("SANDBOX_ERP_TOKEN", "sandbox-erp-token")
os.environ.setdefault("SANDBOX_CRM_TOKEN", "sandbox-crm-token")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if host != "localhost" and (ip is None or not ip.is_loopback):
            raise ConnectionRefusedError(f"tests may only reach loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secrets registered by one test must not mask text in the next."""
    from concord.redact import forget_secrets

    yield
    forget_secrets()


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def _postgres_schema_url() -> Iterator[str]:
    import sqlalchemy as sa

    assert POSTGRES_URL
    schema = f"concord_test_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each database (PostgreSQL only when configured)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'concord.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("CONCORD_TEST_POSTGRES_URL not set")
    yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'concord.db'}"
