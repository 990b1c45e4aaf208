"""A real Tryton 8.2 server on loopback, seeded through Tryton's own API, for the REST connector.

Tryton and its modules live in their own venv (its dependencies never meet concord's or
Airflow's), created once with ``python -m venv`` + pip and reused. A seeded SQLite database is
kept as a template next to it, rebuilt only when the seeding script changes; each test module
copies the template, serves the copy with ``trytond`` on a free loopback port and stops it
afterwards. The cache lives in ``$CONCORD_TRYTON_CACHE`` (default ``var/tryton``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("tryton_script.py")
TRYTON_VERSION = "8.2"
PACKAGES = [
    f"{name}=={TRYTON_VERSION}.*"
    for name in (
        "trytond",
        "trytond_sale",
        "trytond_stock",
        "trytond_account_invoice",
        "trytond_account_payment",
        "proteus",
    )
]
MODULES = ["sale", "stock", "account_invoice", "account_payment"]
TEMPLATE_DB = "template"


def cache_dir() -> Path:
    return Path(os.environ.get("CONCORD_TRYTON_CACHE", REPO / "var" / "tryton")).resolve()


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def _config_text(db_dir: Path, port: int = 8000) -> str:
    return f"[database]\nuri = sqlite://\npath = {db_dir}\n[web]\nlisten = 127.0.0.1:{port}\n"


@dataclass
class TrytonInstall:
    """The cached venv and seeded template database."""

    root: Path
    python: Path
    template: Path
    seed: dict[str, Any]

    def script(
        self, config: Path, database: str, command: str, script: Path = SCRIPT
    ) -> dict[str, Any]:
        """Run a ``tryton_script.py`` (or ``script``) command against a database; its result."""
        out = _run([str(self.python), str(script), str(config), database, command])
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result


def _ensure_venv(root: Path) -> Path:
    venv = root / "venv"
    python = venv / "bin" / "python"
    marker = venv / "concord-packages.txt"
    wanted = "\n".join(PACKAGES)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES])
    marker.write_text(wanted)
    return python


def _ensure_template(root: Path, python: Path) -> tuple[Path, dict[str, Any]]:
    digest = hashlib.sha256(SCRIPT.read_bytes() + "\n".join(PACKAGES).encode()).hexdigest()[:16]
    db_dir = root / f"template-{digest}"
    template = db_dir / f"{TEMPLATE_DB}.sqlite"
    seed_file = db_dir / "seed.json"
    if template.exists() and seed_file.exists():
        return template, json.loads(seed_file.read_text())
    for stale in root.glob("template-*"):  # built by an older seeding script
        shutil.rmtree(stale, ignore_errors=True)
    db_dir.mkdir(parents=True)
    config = db_dir / "trytond.conf"
    config.write_text(_config_text(db_dir))
    (db_dir / "admin-password").write_text("admin\n")
    template.touch()
    env = {**os.environ, "TRYTONPASSFILE": str(db_dir / "admin-password")}
    admin = python.parent / "trytond-admin"
    _run(
        [
            str(admin),
            "-c",
            str(config),
            "-d",
            TEMPLATE_DB,
            "-u",
            *MODULES,
            "--activate-dependencies",
            "--email",
            "admin@example.com",
        ],
        env=env,
    )
    seed = TrytonInstall(root, python, template, {}).script(config, TEMPLATE_DB, "seed")
    seed_file.write_text(json.dumps(seed))
    return template, seed


@pytest.fixture(scope="session")
def tryton_install() -> TrytonInstall:
    """The Tryton venv and seeded template, built once and cached across runs."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions wait instead of racing
        python = _ensure_venv(root)
        template, seed = _ensure_template(root, python)
    return TrytonInstall(root, python, template, seed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"trytond exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"trytond did not listen on port {port} within {timeout:g}s")


@dataclass
class TrytonServer:
    """One running server over a private copy of the template database."""

    install: TrytonInstall
    url: str  # base URL including the database name
    key: str  # the REST user application key
    config: Path
    database: str

    def script(self, command: str, script: Path = SCRIPT) -> dict[str, Any]:
        return self.install.script(self.config, self.database, command, script)


@pytest.fixture(scope="module")
def tryton_server(
    tryton_install: TrytonInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrytonServer]:
    """``trytond`` serving a fresh copy of the seeded database; always stopped afterwards."""
    work = tmp_path_factory.mktemp("tryton")
    database = "concord"
    shutil.copyfile(tryton_install.template, work / f"{database}.sqlite")
    port = _free_port()
    config = work / "trytond.conf"
    config.write_text(_config_text(work, port))
    log = (work / "trytond.log").open("wb")
    proc = subprocess.Popen(
        [str(tryton_install.python.parent / "trytond"), "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, proc)
        yield TrytonServer(
            tryton_install,
            f"http://127.0.0.1:{port}/{database}",
            str(tryton_install.seed["key"]),
            config,
            database,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
