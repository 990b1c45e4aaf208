"""Nothing lost, nothing stale: the tryton profile against a Tryton-dialect server that changes
its data between pages (``sandbox/tryton_rest.py``), through the real pipeline.

Parties are paged six a page (five pages). Edits between pages move a record to the end of the
(last_modified_at, id) order, which made offset paging skip the record behind it; seek paging
with the window end fixed at the run's start loses nothing, the count check (an id listing of
the same window) proves it, and offset paging under the same edits fails the entity loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select

from concord.config import load_config
from concord.contracts import Checkpoint, Exclusion, Page
from concord.errors import ConcordError
from concord.pipeline import RunOptions, run_sync
from concord.pipeline.context import open_context
from concord.pipeline.extract import Excluder, stage_pages
from concord.pipeline.reports import PullCounts
from concord.store import STAGING_CACHE_KIB, Store
from concord.store import tables as t
from concord.store.store import BULK_CACHE_KIB
from sandbox.server import Fault, Request
from sandbox.tryton_rest import TrytonRestServer
from tests.integration.connectors.tryton_dialect import (
    CUSTOMERS,
    write_tryton_config,
)

PARTIES = 30
PAGE = 6


def seed(server: TrytonRestServer) -> None:
    server.models = {"party.party": {}, "company.company": {}}
    server.add("company.company", {"id": 1, "party": 1000})
    base = datetime.now(UTC) - timedelta(days=1)
    for i in range(1, PARTIES + 1):
        server.add(
            "party.party",
            {"id": i, "name": f"Party {i:02d}", "code": f"C{i:03d}", "email": f"p{i}@example.com"},
            at=base + timedelta(seconds=i),
        )


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[TrytonRestServer]:
    monkeypatch.setenv("FAKE_TRYTON_KEY", "tryton-key")
    with TrytonRestServer() as srv:
        seed(srv)
        yield srv


def write_config(path: Path, server: TrytonRestServer, **source: Any) -> Path:
    return write_tryton_config(path, server, {"customers": CUSTOMERS}, page_size=PAGE, **source)


def sync(config: Path) -> dict[str, Any]:
    return sync_with(config, None)


def sync_with(config: Path, on_event: Any) -> dict[str, Any]:
    """A sync's report; a run that raised gives its stored report and ``raised``."""
    try:
        report: dict[str, Any] = dict(
            run_sync(load_config(config), RunOptions(trigger="test"), on_event=on_event)
        )
    except ConcordError as exc:  # a partial run raises after storing its report
        store = Store(load_config(config).store_url)
        try:
            run = store.last_runs(1)[0]
        finally:
            store.dispose()
        report = dict(run["report"])
        report["raised"] = str(exc)
    return report


def staged(config: Path) -> dict[str, dict[str, Any]]:
    store = Store(load_config(config).store_url)
    try:
        with store.engine.connect() as conn:
            raw = t.raw_records
            rows = conn.execute(select(raw.c.source_id, raw.c.payload)).all()
    finally:
        store.dispose()
    return {str(sid): orjson.loads(payload) for sid, payload in rows}


def assert_store_equals_server(config: Path, server: TrytonRestServer) -> None:
    ours = staged(config)
    theirs = {str(r["id"]): r for r in server.records("party.party", active_only=True)}
    assert sorted(ours, key=int) == sorted(theirs, key=int)
    for rid, record in theirs.items():
        assert ours[rid]["name"] == record["name"], rid


def is_data_page(model: str, request: Request) -> bool:
    """A page of the pull itself (not the id listing of the count check)."""
    return model == "party.party" and request.query.get("f") != "id"


class EditAfterEveryPage:
    """After each data page, edit a record already pulled (it moves to the end of the order)."""

    def __init__(self, *, passes: int | None = None) -> None:
        self.pages = 0
        self.edited: list[int] = []
        self.passes = passes  # offset paging: stop editing after this many passes
        self.starts = 0

    def __call__(self, server: TrytonRestServer, model: str, request: Request) -> None:
        if not is_data_page(model, request):
            return
        self.starts += request.headers.get("range", "").startswith("records=0-")
        if self.passes is not None and self.starts > self.passes:
            return
        self.pages += 1
        rid = len(self.edited) + 1  # ids 1, 2, 3...: always on a page already served
        server.edit("party.party", rid, name=f"Party {rid:02d} (edited)")
        self.edited.append(rid)


def test_five_page_pull_with_an_edit_after_every_page_loses_nothing(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server)
    hook = EditAfterEveryPage()
    server.after_page = hook
    first = sync(config)
    ex = first["stages"]["extract"]["tryton/customers"]
    assert ex["pages"] == PARTIES // PAGE and hook.pages == ex["pages"] >= 5
    assert (ex["count_check"], ex["count_how"]) == ("agree", "id listing")
    assert ex["source_count"] == ex["staged_count"] == PARTIES - len(hook.edited)
    assert ex["left_window"] == len(hook.edited) and not ex["repulled"]
    ours = staged(config)
    assert len(ours) == PARTIES  # every party, the edited ones at the version read
    server.after_page = None
    second = sync(config)
    ex2 = second["stages"]["extract"]["tryton/customers"]
    assert ex2["count_check"] == "agree" and ex2["changed"] == len(hook.edited)
    assert_store_equals_server(config, server)


def test_offset_paging_loses_records_under_edits_and_one_repull_repairs_it(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "concord.yaml",
        server,
        incremental={"style": "tryton_domain", "paging": "offset"},
    )
    hook = EditAfterEveryPage(passes=1)
    server.after_page = hook
    report = sync(config)
    ex = report["stages"]["extract"]["tryton/customers"]
    # the first pass skipped a record behind every edit; the id listing saw it, the window was
    # pulled again and then every record the source holds in it was staged
    assert ex["repulled"] and ex["count_check"] == "agree"
    assert ex["source_count"] == ex["staged_count"] == PARTIES - len(hook.edited)
    server.after_page = None
    sync(config)
    assert_store_equals_server(config, server)


def test_a_count_that_still_disagrees_after_the_repull_fails_the_entity_with_both_numbers(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server)
    server.hidden = {17}  # listed by the ERP, never in a page
    report = sync(config)
    extract = report["stages"]["extract"]["tryton/customers"]
    assert extract["status"] == "failed"
    error = extract["error"]
    assert f"the source holds {PARTIES} records" in error
    assert f"concord staged {PARTIES - 1}" in error and "e.g. 17" in error
    assert "again" in error
    recon = report["stages"]["reconcile"]["all"]
    assert not recon["ok"] and any("the source holds" in m for m in recon["mismatches"])
    store = Store(load_config(config).store_url)
    try:
        state = store.watermark("tryton", "customers")
    finally:
        store.dispose()
    assert state.cursor is None and state.checkpoint is None  # the watermark did not move
    server.hidden = set()
    again = sync(config)
    assert again["stages"]["extract"]["tryton/customers"]["count_check"] == "agree"
    assert_store_equals_server(config, server)


class Crash(Exception):
    """Stands for the process dying mid-entity (not a ConcordError: the run stops)."""


def test_crash_mid_entity_then_edit_then_resume_is_exact(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server, commit_records=1)  # every page
    pages = 0

    def crash_after_two_pages(name: str, data: dict[str, Any]) -> None:
        nonlocal pages
        if name == "page":
            pages += 1
            if pages == 2:
                raise Crash

    with pytest.raises(Crash):
        run_sync(load_config(config), RunOptions(trigger="test"), on_event=crash_after_two_pages)
    assert len(staged(config)) == 2 * PAGE
    store = Store(load_config(config).store_url)
    try:
        kept = store.watermark("tryton", "customers").checkpoint_window_end
    finally:
        store.dispose()
    assert kept is not None
    first_end = kept.isoformat()
    server.edit("party.party", 1, name="Party 01 (edited after the crash)")  # already pulled
    server.edit("party.party", 20, name="Party 20 (edited after the crash)")  # not yet pulled
    resumed = sync(config)
    ex = resumed["stages"]["extract"]["tryton/customers"]
    assert ex["resumed"] and ex["pages"] == PARTIES // PAGE - 2
    assert ex["count_check"] == "agree" and not ex["repulled"]
    # the resume pulls the crashed run's window (its end kept with the checkpoint): party 20,
    # edited since, left it and comes with the next window; party 1 is staged as first read
    assert ex["window_end"] == first_end
    assert sorted(staged(config), key=int) == [str(i) for i in range(1, PARTIES + 1) if i != 20]
    sync(config)
    assert_store_equals_server(config, server)


def _checkpoint(config: Path) -> str | None:
    store = Store(load_config(config).store_url)
    try:
        return store.watermark("tryton", "customers").checkpoint
    finally:
        store.dispose()


def test_pages_commit_in_batches_with_the_checkpoint_of_the_batchs_last_page(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server, commit_records=2 * PAGE)
    seen: list[tuple[int, str | None]] = []

    def look(name: str, data: dict[str, Any]) -> None:
        if name == "page" and data["records"]:
            seen.append((len(staged(config)), _checkpoint(config)))

    run_sync(load_config(config), RunOptions(trigger="test"), on_event=look)
    # after pages 1..5: the batch of pages 1-2 and of 3-4 commit when full, page 5 at the end
    assert [n for n, _ in seen] == [0, 2 * PAGE, 2 * PAGE, 4 * PAGE, 4 * PAGE]
    assert seen[0][1] is None and seen[1][1] is not None
    assert seen[2][1] == seen[1][1]  # page 3 is not committed: the checkpoint is page 2's
    assert seen[3][1] not in (None, seen[1][1])
    assert len(staged(config)) == PARTIES and _checkpoint(config) is None


def test_a_source_failing_mid_window_commits_the_pages_it_sent_before(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server)  # one batch would hold every page
    armed = False

    def fail_a_later_page(name: str, data: dict[str, Any]) -> None:
        nonlocal armed
        if name == "page" and not armed:
            armed = True
            server.faults.append(Fault(status=400, times=1))  # not retried: the pull fails

    report = sync_with(config, fail_a_later_page)
    assert "raised" in report
    kept = staged(config)
    assert 0 < len(kept) < PARTIES and len(kept) % PAGE == 0  # whole pages, none lost
    assert _checkpoint(config) is not None  # the resume starts after them
    resumed = sync(config)
    ex = resumed["stages"]["extract"]["tryton/customers"]
    assert ex["resumed"] and ex["count_check"] == "agree"
    assert ex["records"] == PARTIES - len(kept)
    assert sorted(staged(config), key=int) == [str(i) for i in range(1, PARTIES + 1)]


def test_staging_connections_get_the_staging_cache_not_the_map_writers(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    # every pooled connection the concurrent extract commits on keeps its cache: at the map's
    # 64 MiB each, a full-scale extract's peak memory doubled (issue 19)
    config = write_config(tmp_path / "concord.yaml", server, commit_records=1)
    ctx = open_context(load_config(config), RunOptions(trigger="test"))
    sizes: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("PRAGMA cache_size="):
            sizes.append(statement)

    event.listen(ctx.store.engine, "before_cursor_execute", note)
    pages = [Page([{"id": i, "name": f"P{i}", "last_modified_at": "2026-01-01"}]) for i in (1, 2)]
    try:
        stage_pages(
            ctx,
            pages,
            "tryton",
            "customers",
            None,
            PullCounts(),
            lambda conn, token, high: None,
            Excluder([]),
            set(),
        )
    finally:
        ctx.store.dispose()
    assert sizes == [f"PRAGMA cache_size=-{STAGING_CACHE_KIB}"] * 2  # one per batch
    assert STAGING_CACHE_KIB < BULK_CACHE_KIB
    assert sorted(staged(config)) == ["1", "2"]


@pytest.mark.parametrize("commit_records", [1, None], ids=["every page", "one batch"])
def test_a_record_read_twice_before_a_commit_is_staged_as_last_seen(
    server: TrytonRestServer, tmp_path: Path, commit_records: int | None
) -> None:
    path = write_config(tmp_path / "concord.yaml", server, commit_records=commit_records)
    ctx = open_context(load_config(path), RunOptions(trigger="test"))

    def party(i: int, code: str) -> dict[str, Any]:
        return {"id": i, "name": f"Party {i}", "code": code, "last_modified_at": "2026-01-01"}

    pages = [
        Page([party(1, "C1"), party(2, "C2")], Checkpoint("after-1")),
        Page([party(1, "GONE"), party(3, "C3")], Checkpoint("after-2")),  # 1 now excluded
        Page([party(4, "GONE")], Checkpoint("after-3")),
        Page([party(4, "C4"), party(2, "C2b")]),  # 4 back, 2 changed
    ]
    try:
        stage_pages(
            ctx,
            pages,
            "tryton",
            "customers",
            None,
            PullCounts(),
            lambda conn, token, high: None,
            Excluder([Exclusion(path="code", values=["GONE"])]),
            set(),
        )
    finally:
        ctx.store.dispose()
    kept = staged(path)
    assert sorted(kept, key=int) == ["2", "3", "4"]
    assert kept["2"]["code"] == "C2b" and kept["4"]["code"] == "C4"


def test_a_new_key_order_from_the_server_changes_no_record(
    server: TrytonRestServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "concord.yaml", server)
    sync(config)
    server.shuffle_keys = True  # as after a Tryton restart
    full = dict(run_sync(load_config(config), RunOptions(trigger="test", full_refresh=True)))
    ex = full["stages"]["extract"]["tryton/customers"]
    assert ex["records"] == PARTIES
    assert (ex["new"], ex["changed"], ex["unchanged"]) == (0, 0, PARTIES)
