"""The wire ceiling: the pages concord's REST sources pull, pulled by a bare requests + orjson
loop into memory, with no store, no checks and no staging.

`python -m bench.wire --spec spec.json --out wire.json` reads {"sources": {name: url}, "entities",
"page_size", "token", "window_end"} and pulls every entity of every source twice: one source at
a time (one keep-alive session per source, entities one after the other), then all sources in
parallel (one thread and session per source). Each page is parsed with orjson and dropped once
its records are counted, so memory stays flat. It writes {"sequential": {"seconds", "records"},
"parallel": {...}} so the runner can report concord's extract as a ratio of each (the same
requests concord sends: `limit`, `updated_before` = the window end, the keyset `cursor`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import requests


def pull_source(url: str, entities: Sequence[str], page_size: int, token: str, end: str) -> int:
    """Every page of every entity of one source through one session; the records counted."""
    records = 0
    with requests.Session() as session:
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {token}"
        session.headers["Accept"] = "application/json"
        for entity in entities:
            params: dict[str, str | int] = {"updated_before": end, "limit": page_size}
            while True:
                resp = session.get(f"{url.rstrip('/')}/api/v1/{entity}", params=params, timeout=60)
                resp.raise_for_status()
                page: dict[str, Any] = orjson.loads(resp.content)
                records += len(page["data"])
                cursor = page.get("next_cursor")
                if not cursor:
                    break
                params["cursor"] = cursor
    return records


def sequential(spec: dict[str, Any]) -> dict[str, float]:
    """One source after the other."""
    started = time.perf_counter()
    records = sum(
        pull_source(url, spec["entities"], spec["page_size"], spec["token"], spec["window_end"])
        for url in spec["sources"].values()
    )
    return {"seconds": round(time.perf_counter() - started, 3), "records": records}


def parallel(spec: dict[str, Any]) -> dict[str, float]:
    """Every source at once, a thread each."""
    counts: dict[str, int] = {}
    errors: list[BaseException] = []

    def one(name: str, url: str) -> None:
        try:
            counts[name] = pull_source(
                url, spec["entities"], spec["page_size"], spec["token"], spec["window_end"]
            )
        except BaseException as exc:  # re-raised below, in the calling thread
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(name, url), name=f"wire-{name}")
        for name, url in spec["sources"].items()
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {"seconds": round(seconds, 3), "records": sum(counts.values())}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Both pulls, after a warm-up page of each source (imports, connections, server caches)."""
    for url in spec["sources"].values():
        with requests.Session() as session:
            session.trust_env = False
            session.get(
                f"{url.rstrip('/')}/api/v1/{spec['entities'][0]}",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {spec['token']}"},
                timeout=60,
            )
    return {"sequential": sequential(spec), "parallel": parallel(spec)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wire", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(orjson.loads(args.spec.read_bytes()))
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
