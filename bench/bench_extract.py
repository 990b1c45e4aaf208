"""Micro-benchmark: concord's extract stage alone against the bare wire loop, same servers.

``python -m bench.bench_extract [--scale small|medium|full] [--concurrency N] [--workdir DIR]
[--postgres URL] [--profile]`` generates the bench data set once (kept in the workdir, default
``var/bench-extract/<scale>``), serves it as ``python -m bench`` does, pulls it twice with
``bench.wire`` in a child process (the second pull is timed, one source at a time), then runs
only the extract stage of a sync (``extract_all`` under the run lock) into a fresh store
(SQLite, or a fresh schema on ``--postgres``), and prints both times, their ratio and the
stage's peak RSS: this process's own, sampled every 50 ms by ``bench.measure``'s meter with
its children left out (the servers are this process's children here). ``--profile``
prints cProfile's top functions of the stage's own thread (the read-ahead threads run beside
it). A change to staging, the store's pragmas or the connectors can be measured here in a
minute or two, without the other stages.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Sequence
from pathlib import Path

from bench import runner
from bench.generate import SCALES, SOURCES, generate, source_path
from bench.measure import StageMeter
from concord.config import load_config
from concord.pipeline.context import RunOptions, open_context
from concord.pipeline.gates import gate_entities
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.sync import extract_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_extract")
    parser.add_argument("--scale", choices=["tiny", "small", "medium", "full"], default="small")
    parser.add_argument("--concurrency", type=int, default=None, help="extract_concurrency")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    directory = args.workdir or runner.REPO / "var" / "bench-extract" / args.scale
    directory.mkdir(parents=True, exist_ok=True)
    if not all(source_path(directory, s).exists() for s in SOURCES):
        generate(directory, SCALES[args.scale])
    os.environ.update(runner.child_env())
    with runner.servers(directory) as urls:
        # in a child process, as `python -m bench` pulls it: its heap is not the stage's
        runner.wire_ceiling(directory, urls)  # warm: server caches
        wire = runner.wire_ceiling(directory, urls)["sequential"]
        store_url = runner.fresh_store(directory, args.postgres, f"extract_{args.scale}")
        config = load_config(runner.write_config(directory, urls, store_url, args.concurrency))
        ctx = open_context(config, RunOptions(trigger="bench"))
        entities = gate_entities(ctx)
        profile = cProfile.Profile() if args.profile else None
        meter = StageMeter(children=False)  # the ERP servers are this process's children
        before = meter.process.memory_info().rss
        meter.start()
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        locked_run(ctx, lambda: extract_all(ctx, entities))
        if profile is not None:
            profile.disable()
        took = time.perf_counter() - started
        meter.stop()
        ctx.store.dispose()
    print(f"wire (one source at a time): {wire['records']:,} records in {wire['seconds']:.2f} s")
    print(
        f"concord extract (extract_concurrency {config.extract_concurrency}): {took:.2f} s, "
        f"ratio {wire['seconds'] / took:.3f}, peak RSS {meter.peak_all / 2**20:,.0f} MiB "
        f"({before / 2**20:,.0f} MiB before the stage; {ctx.store.dialect})"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
