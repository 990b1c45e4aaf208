"""Benchmark of the declarative REST source: pull throughput (records/s) and peak RSS.

Run ``PYTHONPATH=. python bench/bench_rest_pull.py [--records N] [--page-size P] [--repeat R]``.
A loopback JSON API runs in a separate process (so its CPU and memory are not the client's) and
serves ERP-like order records page by page with a next cursor; this process pulls them all
through ``RestSource.extract`` (HTTP client, retries, paginator, orjson parsing), counting
records without keeping them, once with plain JSON and once in Tryton's tagged dialect with the
``decode: tryton`` step. It reports the best of R runs and the process's peak RSS, and writes
bench/results/rest_pull.md. Targets: at least 40,000 records/s, under 150 MiB RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import socket
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "rest_pull.md"
TARGET_RPS = 40_000
TARGET_RSS_MIB = 150


def _money(value: str, tagged: bool) -> Any:
    return {"__class__": "Decimal", "decimal": value} if tagged else value


def _record(i: int, tagged: bool) -> dict[str, Any]:
    stamp = (
        {
            "__class__": "datetime",
            "year": 2026,
            "month": 1 + i % 12,
            "day": 1 + i % 28,
            "hour": i % 24,
            "minute": i % 60,
            "second": 0,
            "microsecond": 0,
        }
        if tagged
        else f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
    )
    return {
        "id": i,
        "number": f"SO-{i:08d}",
        "party": 1 + i % 5000,
        "state": "processing",
        "sale_date": stamp,
        "currency": {"id": 1, "code": "EUR"},
        "untaxed_amount": _money(f"{100 + i % 900}.00", tagged),
        "tax_amount": _money(f"{(100 + i % 900) // 5}.00", tagged),
        "total_amount": _money(f"{(100 + i % 900) * 6 // 5}.00", tagged),
        "reference": f"PO-{i % 7919}",
        "description": "Standard order",
        "last_modified_at": stamp,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        server: Any = self.server
        query = parse_qs(urlsplit(self.path).query)
        start = int(query.get("cursor", ["0"])[0])
        size = int(query.get("limit", ["1000"])[0])
        end = min(start + size, server.total)
        tagged = urlsplit(self.path).path.endswith("tagged")
        body = orjson.dumps(
            {
                "data": [_record(i, tagged) for i in range(start, end)],
                "next_cursor": str(end) if end < server.total else None,
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(port: int, total: int) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    httpd.total = total  # type: ignore[attr-defined]
    httpd.serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("bench server did not start")


def _source(url: str, page_size: int, decode: str) -> Any:
    from concord.config import EntityConfig, SourceConfig
    from connectors.erp.rest import RestSource

    config = SourceConfig.model_validate(
        {
            "type": "rest",
            "base_url": url,
            "paginator": {"type": "cursor", "cursor_path": "next_cursor"},
            "page_size": page_size,
            "records_path": "data",
            "decode": decode,
            "entities": {
                "plain": EntityConfig(mapping=Path("x.yaml"), path="/orders"),
                "tagged": EntityConfig(mapping=Path("x.yaml"), path="/orders/tagged"),
            },
        }
    )
    config.name = "bench"
    return RestSource.from_config(config)


def _pull(url: str, entity: str, page_size: int) -> tuple[int, float]:
    from concord.contracts import Window

    source = _source(url, page_size, "tryton" if entity == "tagged" else "none")
    started = time.perf_counter()
    count = 0
    try:
        for page in source.extract(entity, Window(None, None), None):
            count += len(page.records)
    finally:
        source.close()
    return count, time.perf_counter() - started


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port, args.records), daemon=True)
    server.start()
    results: dict[str, dict[str, float]] = {}
    try:
        _wait(port)
        url = f"http://127.0.0.1:{port}"
        _pull(url, "plain", args.page_size)  # warm-up: imports, connection
        for entity in ("plain", "tagged"):
            best = 0.0
            for _ in range(args.repeat):
                count, seconds = _pull(url, entity, args.page_size)
                assert count == args.records, (entity, count)
                best = max(best, count / seconds)
            results[entity] = {"records_per_s": best}
    finally:
        server.terminate()
        server.join(5)
    rss = _peak_rss_mib()
    lines = [
        "# REST pull benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        f"`PYTHONPATH=. python bench/bench_rest_pull.py --records {args.records} "
        f"--page-size {args.page_size} --repeat {args.repeat}`",
        "",
        "A loopback JSON API in a separate process serves ERP-like order records (12 fields) with "
        "a next cursor; this process pulls every record through `RestSource.extract` (HTTP "
        "client, paginator, orjson), counting them without keeping them. Best of the runs.",
        "",
        "| variant | records | page size | records/s | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for entity, label in (("plain", "plain JSON"), ("tagged", "Tryton tags + `decode: tryton`")):
        rps = results[entity]["records_per_s"]
        verdict = "ok" if rps >= TARGET_RPS else "BELOW"
        lines.append(
            f"| {label} | {args.records:,} | {args.page_size} | {rps:,.0f} | "
            f">= {TARGET_RPS:,} ({verdict}) |"
        )
    verdict = "ok" if rss < TARGET_RSS_MIB else "ABOVE"
    lines += [
        "",
        f"Peak RSS of the pulling process (whole run, imports included): **{rss:.0f} MiB** "
        f"(target < {TARGET_RSS_MIB} MiB: {verdict}).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
