"""The benchmark's data generator and runner: seeded and repeatable, with known duplicates, and
`python -m bench` writes a report (tiny scale, no peer, so it stays fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.generate import SCALES, generate, source_path, touch_night, truth_pairs_count
from sandbox.erp_store import ErpStore
from tests.reliability.conftest import REPO


def test_same_seed_gives_the_same_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SCALES["tiny"], seed=5)
    b = generate(tmp_path / "b", SCALES["tiny"], seed=5)
    assert a == b
    for name in ("a", "b"):
        assert (tmp_path / name / "erp_b.sqlite").exists()
    first = ErpStore(source_path(tmp_path / "a", "erp_b")).page("orders", limit=50)
    second = ErpStore(source_path(tmp_path / "b", "erp_b")).page("orders", limit=50)
    assert first == second


def test_counts_match_the_scale_and_duplicates_are_known(tmp_path: Path) -> None:
    scale = SCALES["tiny"]
    counts = generate(tmp_path, scale)
    assert sum(c["customers"] for c in counts.values()) == scale.customers
    for entity in ("orders", "shipments", "payments"):
        assert sum(c[entity] for c in counts.values()) == scale.orders
    assert truth_pairs_count(tmp_path) > scale.customers * 0.05


def test_night_changes_one_percent_after_the_first_night(tmp_path: Path) -> None:
    scale = SCALES["tiny"]
    generate(tmp_path, scale)
    changed = touch_night(tmp_path, 0.01)
    assert changed == sum(
        max(1, int(n * 0.01)) for n in [scale.customers // 3] * 3 + [scale.orders // 3] * 9
    )


def test_python_m_bench_writes_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--scale",
            "tiny",
            "--no-peer",
            "--workdir",
            str(tmp_path / "work"),
            "--report",
            str(report),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = report.read_text()
    assert "## Targets" in text and "precision" in text
    assert "## Map ceiling" in text and "of the map ceiling" in text and "bound by" in text
    assert report.with_suffix(".png").stat().st_size > 1000
    assert report.with_suffix(".json").exists()
