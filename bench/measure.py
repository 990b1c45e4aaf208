"""The measured process: one `run_sync` with RSS sampled in a thread and time split by stage.

`python -m bench.measure --config <yaml> --out <json>` runs the nightly sync exactly as the CLI
does and writes {"wall_s", "peak_rss_mb", "stages": {stage: {"seconds", "peak_rss_mb",
"records"}}, "report"} to the JSON file, so the benchmark runner (another process, with the
sandbox servers in yet others) only reads numbers and never pollutes them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from sqlalchemy import func, select

from concord.config import load_config
from concord.pipeline import RunOptions, run_sync
from concord.store import Store
from concord.store import tables as t


class StageMeter:
    """Wall time and peak RSS per stage, fed by pipeline events and a sampling thread.

    ``children``: the live child processes' RSS and CPU count as the run's (its map workers);
    False where the children are not the run's (``bench.bench_extract`` serves the ERPs from
    its own).
    """

    def __init__(self, interval: float = 0.05, *, children: bool = True) -> None:
        self.process = psutil.Process()
        self.children = children
        self.interval = interval
        self.current = "setup"
        self.since = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds of this process and its children
        self._cpu_since = self._cpu_now()
        self.peak: dict[str, int] = {}
        self.peak_all = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _children(self) -> list[psutil.Process]:
        if not self.children:
            return []
        try:
            found: list[psutil.Process] = self.process.children(recursive=True)
        except psutil.Error:
            return []
        return found

    def _take(self) -> None:
        # the map stage's worker processes count: their memory is the run's too
        rss = int(self.process.memory_info().rss)
        for child in self._children():
            try:
                rss += int(child.memory_info().rss)
            except psutil.Error:  # it ended between the listing and the reading
                continue
        stage = self.current
        self.peak[stage] = max(self.peak.get(stage, 0), rss)
        self.peak_all = max(self.peak_all, rss)

    def _cpu_now(self) -> float:
        """CPU seconds of this process, its ended children and its live ones (map workers)."""
        times = self.process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self._children():
            try:
                own = child.cpu_times()
            except psutil.Error:
                continue
            total += own.user + own.system
        return float(total)

    def switch(self, stage: str) -> None:
        self._take()
        now, cpu = time.perf_counter(), self._cpu_now()
        self.seconds[self.current] = self.seconds.get(self.current, 0.0) + now - self.since
        self.cpu[self.current] = self.cpu.get(self.current, 0.0) + cpu - self._cpu_since
        self.current, self.since, self._cpu_since = stage, now, cpu

    def on_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "stage" and data.get("stage") != self.current:
            self.switch(str(data["stage"]))

    def stop(self) -> None:
        self.switch("done")
        self._stop.set()
        self._thread.join()


def stage_records(report: Mapping[str, Any]) -> dict[str, int]:
    """Records each stage handled, from the run report."""
    stages = report.get("stages", {})

    def total(stage: str, key: str) -> int:
        return sum(int(body.get(key, 0) or 0) for body in stages.get(stage, {}).values())

    push = stages.get("push", {}).values()
    return {
        "extract": total("extract", "records"),
        "map": total("map", "records"),
        "resolve": total("resolve", "records"),
        "build_360": total("build_360", "customers") or total("build_360", "rows"),
        "push": sum(int(b.get("accepted", 0)) + int(b.get("rejected", 0)) for b in push),
        "reconcile": total("extract", "records"),
    }


def stored_stage_seconds(store_url: str, run_id: str) -> dict[str, float]:
    """Seconds per stage from the store's stage reports (first start to last finish)."""
    sr = t.stage_reports
    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(sr.c.stage, func.min(sr.c.started_at), func.max(sr.c.finished_at))
                .where(sr.c.run_id == run_id)
                .group_by(sr.c.stage)
            ).all()
    finally:
        store.dispose()
    return {str(stage): (end - start).total_seconds() for stage, start, end in rows}


def split_reconcile(seconds: dict[str, float], stored: dict[str, float]) -> None:
    """The pipeline announces no reconcile stage: move its stored time out of the last stage."""
    took = stored.get("reconcile")
    if took is None or "reconcile" in seconds:
        return
    last = "push" if "push" in seconds else "build_360"
    moved = min(took, seconds.get(last, 0.0))
    seconds[last] = seconds.get(last, 0.0) - moved
    seconds["reconcile"] = moved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measure", description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--as-of", default=None, help="the run's business moment (ISO time; default: now)"
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    meter = StageMeter()
    meter.start()
    started = time.perf_counter()
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    report = run_sync(config, RunOptions(trigger="bench", as_of=as_of), on_event=meter.on_event)
    wall = time.perf_counter() - started
    meter.stop()
    records = stage_records(report)
    stored = stored_stage_seconds(config.store_url, str(report["run_id"]))
    split_reconcile(meter.seconds, stored)
    if "reconcile" in meter.seconds:
        meter.peak["reconcile"] = meter.peak.get("push", meter.peak_all)
    mb = 1024 * 1024
    stages = {
        stage: {
            "seconds": round(seconds, 3),
            "cpu_s": round(meter.cpu.get(stage, 0.0), 3),
            "peak_rss_mb": round(meter.peak.get(stage, 0) / mb, 1),
            "records": records.get(stage, 0),
        }
        for stage, seconds in meter.seconds.items()
        if stage != "done"
    }
    out = {
        "wall_s": round(wall, 3),
        "peak_rss_mb": round(meter.peak_all / mb, 1),
        "stages": stages,
        "report": report,
    }
    args.out.write_bytes(orjson.dumps(out, default=str, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
