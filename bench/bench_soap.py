"""Benchmark of the SOAP source: zeep's reader against the lxml fast path, parse only and end
to end.

Run ``PYTHONPATH=. python bench/bench_soap.py [--customers N] [--page-size P] [--repeat R]``. It
starts the NAV-like sandbox in a separate process (so the server's CPU is not the client's), pulls
every customer through ``SoapSource`` with each reader (best of R, after a warm-up that fills the
server's render cache), times both readers on the same canned pages (customers, and orders with
nested lines) without network, checks that both readers give identical records, and writes
bench/results/soap.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "soap.md"
ENTITIES: dict[str, dict[str, Any]] = {
    "customers": {
        "wsdl": "sandbox/wsdl/customer.wsdl",
        "address": "/WS/CRONUS/Page/Customer",
        "filters": [{"Field": "No", "Criteria": ""}],
        "records_path": "ReadMultiple_Result.Customer",
    },
    "orders": {
        "wsdl": "sandbox/wsdl/sales_order.wsdl",
        "address": "/WS/CRONUS/Page/SalesOrder",
        "filters": [{"Field": "No", "Criteria": ""}],
        "records_path": "ReadMultiple_Result.SalesOrder",
    },
}


def _serve(customers: int, orders_per_customer: int, queue: Any, stop: Any) -> None:
    from sandbox.nav_data import NavDataset
    from sandbox.soap_erp import SoapErpServer

    data = NavDataset.generate(nav_only=customers, orders_per_customer=orders_per_customer)
    with SoapErpServer(data, auth="none") as server:
        queue.put((server.url, data.count("Customer"), data.count("SalesOrder")))
        stop.wait()


def make_source(url: str, parser: str, page_size: int) -> Any:
    from concord.config import EntityConfig, SourceConfig
    from connectors.erp.soap import SoapSource

    config = SourceConfig.model_validate(
        {
            "type": "soap",
            "base_url": url,
            "parser": parser,
            "page_size": page_size,
            "entities": {
                name: EntityConfig(mapping=Path("x.yaml"), **spec)
                for name, spec in ENTITIES.items()
            },
        }
    )
    config.name = "bench_nav"
    return SoapSource.from_config(config)


def pull(url: str, parser: str, entity: str, page_size: int) -> tuple[int, float, float]:
    """Pull every record of ``entity``; (records, seconds in total, seconds inside the reader)."""
    from concord.contracts import Window

    source = make_source(url, parser, page_size)
    call = source._call(entity)
    inner = call.read
    reading = 0.0

    def timed_read(body: bytes) -> list[dict[str, Any]]:
        nonlocal reading
        started = time.perf_counter()
        try:
            got: list[dict[str, Any]] = inner(body)
            return got
        finally:
            reading += time.perf_counter() - started

    call.read = timed_read
    started = time.perf_counter()
    count = sum(len(p.records) for p in source.extract(entity, Window(None, None), None))
    elapsed = time.perf_counter() - started
    source.close()
    return count, elapsed, reading


def canned_page(url: str, page: str, size: int) -> bytes:
    ns = f"urn:microsoft-dynamics-schemas/page/{page.lower()}"
    envelope = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<ReadMultiple xmlns="{ns}"><filter><Field>No</Field><Criteria></Criteria></filter>'
        f"<setSize>{size}</setSize></ReadMultiple></s:Body></s:Envelope>"
    )
    resp = requests.post(
        f"{url}/WS/CRONUS/Page/{page}",
        data=envelope.encode(),
        headers={"SOAPAction": f'"{ns}:ReadMultiple"', "Content-Type": "text/xml"},
        timeout=60,
    )
    resp.raise_for_status()
    return resp.content


def parse_only(url: str, entity: str, page: str, size: int, repeat: int) -> dict[str, Any]:
    from connectors.erp.soap_response import read_with_lxml, read_with_zeep, zeep_xml_parser

    body = canned_page(url, page, size)
    source = make_source(url, "zeep", size)
    call = source._call(entity)
    client = call.client

    parse = zeep_xml_parser(client)

    def zeep_read() -> list[dict[str, Any]]:
        return read_with_zeep(body, call.plan, client.wsdl.types, parse)

    def lxml_read() -> list[dict[str, Any]]:
        return read_with_lxml(body, call.plan)

    assert zeep_read() == lxml_read(), "readers disagree"
    out: dict[str, Any] = {"bytes": len(body)}
    for name, fn in (("zeep", zeep_read), ("lxml", lxml_read)):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            n = len(fn())
            times.append(time.perf_counter() - started)
        out[name] = (n, min(times))
    source.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--orders-per-customer", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    load = os.getloadavg()[0]
    ctx = multiprocessing.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(
        target=_serve, args=(args.customers, args.orders_per_customer, queue, stop), daemon=True
    )
    server.start()
    try:
        url, n_customers, n_orders = queue.get(timeout=300)
        pull(url, "lxml", "customers", args.page_size)  # warm the server's render cache
        pull(url, "lxml", "orders", args.page_size)
        e2e: dict[tuple[str, str], tuple[int, float, float]] = {}
        for entity in ("customers", "orders"):
            for reader in ("lxml", "zeep"):
                runs = [
                    pull(url, reader, entity, args.page_size)
                    for _ in range(1 if reader == "zeep" else args.repeat)
                ]
                e2e[(entity, reader)] = min(runs, key=lambda r: r[1])
        parsed = {
            "customers": parse_only(url, "customers", "Customer", args.page_size, args.repeat),
            "orders": parse_only(url, "orders", "SalesOrder", args.page_size, args.repeat),
        }
    finally:
        stop.set()
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# SOAP source benchmark",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by `PYTHONPATH=. python"
        f" bench/bench_soap.py --customers {args.customers}"
        f" --orders-per-customer {args.orders_per_customer}"
        f" --page-size {args.page_size} --repeat {args.repeat}` on {platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()}, load average before the"
        f" run {load:.1f} (the machine is shared: compare readers within one report).",
        "",
        f"Sandbox: NAV-like SOAP ERP in its own process on loopback, {n_customers} customers and"
        f" {n_orders} sales orders (1-3 lines each), ReadMultiple with bookmark paging,"
        f" setSize {args.page_size}. End to end = build the envelope with zeep, POST, read the"
        " response into plain dicts (what the extract stage receives). Parse only = the reader"
        " alone on one canned page, no network. Best of the repeats (zeep end to end: one run).",
        "",
        "| scope | entity | reader | records | seconds | records/s | share in reader |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for (entity, reader), (n, secs, reading) in e2e.items():
        lines.append(
            f"| end to end | {entity} | {reader} | {n} | {secs:.2f} | {n / secs:,.0f} |"
            f" {reading / secs:.0%} |"
        )
    for entity, result in parsed.items():
        for reader in ("zeep", "lxml"):
            n, secs = result[reader]
            lines.append(
                f"| parse only ({result['bytes'] // 1024} KiB page) | {entity} | {reader} | {n} |"
                f" {secs:.3f} | {n / secs:,.0f} | |"
            )
    speedup = {
        entity: (r["zeep"][1] / r["zeep"][0]) / (r["lxml"][1] / r["lxml"][0])
        for entity, r in parsed.items()
    }
    share = {entity: e2e[(entity, "zeep")][2] / e2e[(entity, "zeep")][1] for entity in parsed}
    fast_customers = e2e[("customers", "lxml")][0] / e2e[("customers", "lxml")][1]
    fast_orders = e2e[("orders", "lxml")][0] / e2e[("orders", "lxml")][1]
    lines += [
        "",
        f"Peak RSS of the client process: {rss_mb:.0f} MB.",
        "",
        "Findings:",
        "",
        f"- zeep's reader is {share['customers']:.0%} (customers) and {share['orders']:.0%}"
        " (orders) of the end-to-end time with `parser: zeep`: it dominates, so the source"
        " reads responses with the lxml fast path by default and keeps zeep for the contract"
        " (WSDL, request envelopes, WS-Security).",
        f"- The lxml reader parses {speedup['customers']:.1f}x (customers) and"
        f" {speedup['orders']:.1f}x (orders with lines) faster than zeep on the same page and"
        " gives identical records (checked before timing).",
        f"- End to end with the lxml reader: {fast_customers:,.0f} customers/s and"
        f" {fast_orders:,.0f} orders/s (target: at least 8,000 records/s).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
