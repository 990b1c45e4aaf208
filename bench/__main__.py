"""`python -m bench [--scale tiny|small|medium|full] [--report PATH] [--no-peer] [--workdir
DIR] [--postgres URL] [--extract-concurrency N]`: run the benchmark (see bench.runner) and write
the markdown report with its PNG chart; by default to bench/results/<date>-<scale>.md, copied to
bench/results/latest.md. The raw figures go to the same path with a .json suffix. The store is
SQLite unless `--postgres` (or CONCORD_BENCH_POSTGRES_URL) names a PostgreSQL server: a fresh
schema there holds it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.generate import SCALES
from bench.report import write_report
from bench.runner import REPO, run_bench, scale_named

RESULTS = REPO / "bench" / "results"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", default="small", choices=list(SCALES))
    parser.add_argument("--report", type=Path, default=None, help="markdown report path")
    parser.add_argument("--no-peer", action="store_true", help="skip the dlt peer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="data and store (default var/bench/<scale>)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CONCORD_BENCH_POSTGRES_URL"),
        metavar="URL",
        help="store in PostgreSQL at URL (a fresh schema); default SQLite",
    )
    parser.add_argument(
        "--extract-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="entities pulled at once (default: the config's extract_concurrency)",
    )
    args = parser.parse_args(argv)
    scale = scale_named(args.scale)
    md = args.report or RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{scale.name}.md"
    result = run_bench(
        scale,
        workdir=args.workdir,
        with_peer=not args.no_peer,
        seed=args.seed,
        postgres=args.postgres,
        extract_concurrency=args.extract_concurrency,
    )
    md.parent.mkdir(parents=True, exist_ok=True)
    md.with_suffix(".json").write_bytes(
        orjson.dumps(result, default=str, option=orjson.OPT_INDENT_2)
    )
    latest = RESULTS / "latest.md" if md.parent.resolve() == RESULTS.resolve() else None
    write_report(result, md, latest=latest)
    print(f"report written to {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
