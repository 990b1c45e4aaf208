"""kill -9 of a real `concord sync` process in the middle of each stage, then a rerun: the store
and the CRM end exactly as after a clean run. And two syncs started at once: the second refuses
(the store's sync lock), never both push."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import (
    CRM_TOKEN,
    ERP_TOKEN,
    REPO,
    UNTIL,
    Sandbox,
    assert_same_as_clean,
    crm_upserted_ids,
    write_config,
)

UNTIL_ARG = UNTIL.strftime("%Y-%m-%dT%H:%M:%SZ")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["SANDBOX_ERP_TOKEN"] = ERP_TOKEN
    env["SANDBOX_CRM_TOKEN"] = CRM_TOKEN
    return env


def sync_args(config: Path) -> list[str]:
    return ["sync", "-c", str(config), "--until", UNTIL_ARG]


def run_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concord.cli", *sync_args(config)],
        env=_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


class PausedSync:
    """A real sync subprocess paused inside the n-th transaction of `stage` (crash_runner)."""

    def __init__(self, config: Path, stage: str, nth: int, *, after_commit: bool = False) -> None:
        flags = ["--after-commit"] if after_commit else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.crash_runner",
                stage,
                str(nth),
                *flags,
                "--",
                *sync_args(config),
            ],
            env=_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stage = stage
        self.paused = threading.Event()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith(f"PAUSED {self.stage}"):
                self.paused.set()

    def wait_paused(self, timeout: float = 120) -> None:
        if not self.paused.wait(timeout):
            self.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(
                f"sync never reached {self.stage}: {''.join(self.output)[-800:]} {err[-800:]}"
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def config(tmp_path: Path, store_url: str, sandbox: Sandbox) -> Path:
    return write_config(
        tmp_path / "concord.yaml",
        store_url=store_url,
        erp_url=sandbox.erp.url,
        crm_url=sandbox.crm.url,
        page_size=20,
        batch_size=60,
    )


# (stage, which transaction of the stage to die in)
CRASH_POINTS = [("extract", 5), ("map", 3), ("resolve", 1), ("build_360", 1), ("push", 2)]


@pytest.mark.parametrize(("stage", "nth"), CRASH_POINTS, ids=[s for s, _ in CRASH_POINTS])
def test_kill_9_mid_stage_then_rerun_equals_clean_run(
    stage: str,
    nth: int,
    clean: dict[str, Any],
    sandbox: Sandbox,
    config: Path,
    store_url: str,
) -> None:
    paused = PausedSync(config, stage, nth)
    try:
        paused.wait_paused()
    finally:
        paused.kill()
    assert paused.proc.returncode == -signal.SIGKILL
    pushed_before = len(crm_upserted_ids(sandbox.crm))
    if stage == "push":
        assert pushed_before > 0, "the crash should hit after the CRM accepted a batch"
    else:
        assert pushed_before == 0
    rerun = run_cli(config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_as_clean(clean, store_url, sandbox.crm)


def test_second_sync_started_while_one_runs_refuses_and_never_pushes(
    clean: dict[str, Any], sandbox: Sandbox, config: Path, store_url: str
) -> None:
    first = PausedSync(config, "extract", 2, after_commit=True)
    try:
        first.wait_paused()
        second = run_cli(config)
        assert second.returncode == 1
        assert "another sync holds the 'sync' lock" in second.stderr
        assert crm_upserted_ids(sandbox.crm) == []
    finally:
        first.kill()
    rerun = run_cli(config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_as_clean(clean, store_url, sandbox.crm)
