"""The README's five-minute tour runs as written after `make demo`: every shell command in the
tour, in order, in a fresh copy of the checkout, with none of the sandbox variables set
beforehand (the tour's own `concord sandbox up` and `. var/sandbox.env` provide them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CHECKOUT = ("concord.yaml", "mappings", "identity", "sandbox")


def tour_commands(readme: str) -> list[str]:
    """Every line of the ```sh blocks of the tour section, comments dropped."""
    start = readme.index("## A five-minute tour")
    end = readme.index("\n## ", start + 1)
    blocks = re.findall(r"```sh\n(.*?)```", readme[start:end], flags=re.DOTALL)
    lines = [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def test_the_tour_has_the_commands_a_newcomer_needs() -> None:
    commands = tour_commands((REPO / "README.md").read_text())
    assert commands[:3] == [". .venv/bin/activate", "concord sandbox up", ". var/sandbox.env"]
    assert "concord sync --dry-run" in commands and commands[-1] == "concord sandbox down"
    assert any("--staged" in c for c in commands) and "concord push --resync" in commands


@pytest.mark.slow
def test_every_command_of_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    checkout = tmp_path / "concord"
    checkout.mkdir()
    for name in CHECKOUT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, checkout / name)
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SANDBOX_", "CONCORD_", "AIRFLOW_CONN_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "80"
    commands = tour_commands((REPO / "README.md").read_text())
    script = "set -e\nconcord demo\n" + "".join(f"echo '$ {c}'\n{c}\n" for c in commands)
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run(
            ["bash", "-c", ". .venv/bin/activate && concord sandbox down"],
            cwd=checkout,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    ran = [line[2:] for line in done.stdout.splitlines() if line.startswith("$ ")]
    assert done.returncode == 0, (
        f"the tour stopped at {ran[-1] if ran else 'concord demo'!r}:\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert ran == commands
    assert "sandbox_erp" in done.stdout and "Golden record" in done.stdout
    assert "stopped: erp, crm, nav" in done.stderr
