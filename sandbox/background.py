"""`concord sandbox up|down` (and `make sandbox`): the demo's sandboxes as background processes.

`up` starts the REST ERP, the SOAP ERP (NAV-like) and the HubSpot-like CRM with the demo's data
(`python -m sandbox erp|nav|crm`, each in its own session, output in `var/sandbox/<name>.log`),
each on its default port (8701, 8703, 8702) or a free one when that is taken, waits until each
says it is listening, and writes the environment the demo config reads to `var/sandbox.env`
(tokens and URLs; load it with `. var/sandbox.env`). The CRM keeps its objects in
`var/sandbox/crm.json`, the file `concord demo` uses too, so the CRM the tour talks to is the one
the demo pushed to. What was started is recorded in `var/sandbox/processes.json`; `down` stops
exactly those processes (SIGTERM, then SIGKILL after a grace period) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.rest_erp import DEFAULT_TOKEN as ERP_TOKEN
from sandbox.soap_erp import DEFAULT_PASSWORD, DEFAULT_USER

CRM_TOKEN = "sandbox-crm-token"
FOLDER = Path("var")
STATE = FOLDER / "sandbox"
ENV_FILE = FOLDER / "sandbox.env"
CRM_STATE = STATE / "crm.json"
SERVICES: dict[str, tuple[int, str]] = {
    "erp": (8701, "CONCORD_SANDBOX_ERP_URL"),
    "crm": (8702, "CONCORD_SANDBOX_CRM_URL"),
    "nav": (8703, "CONCORD_SANDBOX_NAV_URL"),
}
SECRETS = {
    "SANDBOX_ERP_TOKEN": ERP_TOKEN,
    "SANDBOX_CRM_TOKEN": CRM_TOKEN,
    "SANDBOX_NAV_USER": DEFAULT_USER,
    "SANDBOX_NAV_PASSWORD": DEFAULT_PASSWORD,
}
LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Running:
    """One background sandbox: its name, process id and URL."""

    name: str
    pid: int
    url: str


def _processes_file(root: Path) -> Path:
    return root / STATE / "processes.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_sandbox(pid)


def _is_sandbox(pid: int) -> bool:
    """The process is one of ours (`python -m sandbox ...`), not a reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the recorded pid
    return b"sandbox" in cmdline and b"-m" in cmdline


def running(root: Path | None = None) -> list[Running]:
    """The background sandboxes started by `up` that are still alive."""
    path = _processes_file(root or Path.cwd())
    if not path.is_file():
        return []
    found = [Running(**item) for item in json.loads(path.read_text())]
    return [r for r in found if _alive(r.pid)]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start(root: Path, name: str, default_port: int) -> Running:
    port = default_port if _port_free(default_port) else 0
    log_path = root / STATE / f"{name}.log"
    argv = [sys.executable, "-m", "sandbox", name, "--port", str(port)]
    if name == "crm":
        argv += ["--state-file", str(root / CRM_STATE)]
    env = {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed argv
            argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return Running(name, proc.pid, match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    tail = log_path.read_text(errors="replace")[-1000:]
    raise RuntimeError(f"sandbox {name} did not start (log {log_path}):\n{tail}")


def environment(started: list[Running]) -> dict[str, str]:
    """What the demo config reads: the sandboxes' secrets and URLs."""
    urls = {SERVICES[r.name][1]: r.url for r in started}
    return {**SECRETS, **urls}


def env_text(env: dict[str, str]) -> str:
    """`export NAME=value` lines, quoted for a POSIX shell."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def up(root: Path | None = None) -> tuple[list[Running], dict[str, str]]:
    """Start the sandboxes not yet running; write and return the environment to use."""
    root = root or Path.cwd()
    (root / STATE).mkdir(parents=True, exist_ok=True)
    alive = {r.name: r for r in running(root)}
    started = [alive.get(name) or _start(root, name, port) for name, (port, _) in SERVICES.items()]
    _processes_file(root).write_text(json.dumps([r.__dict__ for r in started], indent=2))
    env = environment(started)
    (root / ENV_FILE).write_text(
        "# Written by `concord sandbox up`: the demo sandboxes' tokens and URLs. "
        "Load with `. var/sandbox.env`.\n" + env_text(env)
    )
    return started, env


def down(root: Path | None = None, grace: float = 10.0) -> list[Running]:
    """Stop the sandboxes `up` started (only those); return what was stopped."""
    root = root or Path.cwd()
    alive = running(root)
    for r in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(r.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for r in alive:
        while _alive_at_all(r.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive_at_all(r.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.pid, signal.SIGKILL)
    _processes_file(root).unlink(missing_ok=True)
    return alive


def _alive_at_all(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0
    if waited == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
