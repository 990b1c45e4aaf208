"""Micro-benchmark: concord's extract stage alone against the bare wire loop, same servers.

``python -m bench.bench_extract [--scale small|medium] [--concurrency N] [--workdir DIR]
[--profile]`` generates the bench data set once (kept in the workdir, default
``var/bench-extract/<scale>``), serves it as ``python -m bench`` does, pulls it twice with
``bench.wire``'s one-source-at-a-time loop (the second is timed), then runs only the extract
stage of a sync (``extract_all`` under the run lock) into a fresh SQLite store, and prints both
times and their ratio. ``--profile`` prints cProfile's top functions of the stage's own thread
(the read-ahead threads run beside it). A change to staging, the store's pragmas or the
connectors can be measured here in a minute or two, without the other stages.
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
from bench.wire import sequential
from concord.config import load_config
from concord.pipeline.context import RunOptions, open_context
from concord.pipeline.gates import gate_entities
from concord.pipeline.lifecycle import locked_run
from concord.pipeline.sync import extract_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_extract")
    parser.add_argument("--scale", choices=["tiny", "small", "medium"], default="small")
    parser.add_argument("--concurrency", type=int, default=None, help="extract_concurrency")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    directory = args.workdir or runner.REPO / "var" / "bench-extract" / args.scale
    directory.mkdir(parents=True, exist_ok=True)
    if not all(source_path(directory, s).exists() for s in SOURCES):
        generate(directory, SCALES[args.scale])
    os.environ.update(runner.child_env())
    with runner.servers(directory) as urls:
        spec = runner.wire_spec(urls)
        sequential(spec)  # warm: server caches, imports
        wire = sequential(spec)
        store_url = runner.fresh_store(directory, None, args.scale)
        config = load_config(runner.write_config(directory, urls, store_url, args.concurrency))
        ctx = open_context(config, RunOptions(trigger="bench"))
        entities = gate_entities(ctx)
        profile = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        locked_run(ctx, lambda: extract_all(ctx, entities))
        if profile is not None:
            profile.disable()
        took = time.perf_counter() - started
        ctx.store.dispose()
    print(f"wire (one source at a time): {wire['records']:,} records in {wire['seconds']:.2f} s")
    print(
        f"concord extract (extract_concurrency {config.extract_concurrency}): {took:.2f} s, "
        f"ratio {wire['seconds'] / took:.3f}"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
