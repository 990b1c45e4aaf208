"""Command line for running one sandbox server in the foreground (docker compose, crash tests):
`python -m sandbox erp --port 8701 --token-env SANDBOX_ERP_TOKEN --seed 7 --customers 60` or
`python -m sandbox crm --port 8702 --token-env SANDBOX_CRM_TOKEN` (`--state-file F` keeps its
objects in a file) or
`python -m sandbox nav --port 8703 --password-env SANDBOX_NAV_PASSWORD`; secrets are read from the
named environment variables (the server's defaults when unset), "listening on <url>" is printed
once the port is bound, and SIGTERM or SIGINT stops the server cleanly with exit status 0.
`python -m sandbox demo` is `concord demo`: the three sandboxes and one sync; `python -m sandbox
up|down` is `concord sandbox up|down` (`sandbox.background`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox import crm, rest_erp, soap_erp
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.nav_data import NavDataset
from sandbox.rest_erp import RestErpServer
from sandbox.server import LoopbackServer, serve_until_signalled
from sandbox.soap_erp import SoapErpServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    erp = commands.add_parser("erp", help="REST ERP sandbox")
    erp.add_argument("--port", type=int, default=8701)
    erp.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    erp.add_argument("--token-env", default="SANDBOX_ERP_TOKEN")
    erp.add_argument("--seed", type=int, default=7)
    erp.add_argument("--customers", type=int, default=60)
    crm_cmd = commands.add_parser("crm", help="HubSpot-like CRM sandbox")
    crm_cmd.add_argument("--port", type=int, default=8702)
    crm_cmd.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    crm_cmd.add_argument("--token-env", default="SANDBOX_CRM_TOKEN")
    crm_cmd.add_argument("--state-file", type=Path, help="keep the CRM's objects in this file")
    nav = commands.add_parser("nav", help="SOAP ERP sandbox (NAV page services)")
    nav.add_argument("--port", type=int, default=8703)
    nav.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    nav.add_argument("--user-env", default="SANDBOX_NAV_USER")
    nav.add_argument("--password-env", default="SANDBOX_NAV_PASSWORD")
    nav.add_argument("--seed", type=int, default=7)
    nav.add_argument("--customers", type=int, default=60)
    demo = commands.add_parser("demo", help="the sandboxes and one sync (what `make demo` runs)")
    demo.add_argument("--config", "-c", type=Path, default=Path("concord.yaml"))
    demo.add_argument("--customers", type=int, default=60)
    commands.add_parser("up", help="the demo's sandboxes in the background (`concord sandbox up`)")
    commands.add_parser("down", help="stop them (`concord sandbox down`)")
    return parser


def _start(args: argparse.Namespace) -> LoopbackServer | SoapErpServer:
    if args.command == "nav":
        return SoapErpServer(
            NavDataset.generate(seed=args.seed, customers=args.customers),
            username=os.environ.get(args.user_env) or soap_erp.DEFAULT_USER,
            password=os.environ.get(args.password_env) or soap_erp.DEFAULT_PASSWORD,
            port=args.port,
            host=args.host,
        )
    if args.command == "erp":
        token = os.environ.get(args.token_env) or rest_erp.DEFAULT_TOKEN
        dataset = ErpDataset.generate(seed=args.seed, customers=args.customers)
        return RestErpServer(dataset, token=token, port=args.port, host=args.host)
    token = os.environ.get(args.token_env) or crm.DEFAULT_TOKEN
    return CrmServer(token=token, port=args.port, host=args.host, state_file=args.state_file)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from sandbox.demo import run_demo

        run_demo(args.config, customers=args.customers)
        return 0
    if args.command in ("up", "down"):
        from sandbox import background

        if args.command == "up":
            _, env = background.up()
            sys.stdout.write(background.env_text(env))
        else:
            background.down()
        return 0
    return serve_until_signalled(lambda: _start(args))


if __name__ == "__main__":
    sys.exit(main())
