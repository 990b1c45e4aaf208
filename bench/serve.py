"""Serve one benchmark ERP file in its own process, so the measured process is only concord:
`python -m bench.serve --db var/bench/small/erp_a.sqlite [--port 0] [--token-env NAME]` prints
"listening on <url>" once bound and stops cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.generate import BENCH_ENTITIES
from sandbox import rest_erp
from sandbox.erp_store import ErpStore
from sandbox.rest_erp import RestErpServer
from sandbox.server import serve_until_signalled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-env", default="SANDBOX_ERP_TOKEN")
    args = parser.parse_args(argv)
    if not args.db.exists():
        print(f"error: {args.db} does not exist", file=sys.stderr)
        return 2
    token = os.environ.get(args.token_env) or rest_erp.DEFAULT_TOKEN
    return serve_until_signalled(
        lambda: RestErpServer(ErpStore(args.db, BENCH_ENTITIES), token=token, port=args.port)
    )


if __name__ == "__main__":
    sys.exit(main())
