"""Hypothesis interleaves edits, creations, archives and deletes with the page requests of a seek
pull (the tryton profile against ``sandbox/tryton_rest.py``) and checks that nothing is lost or
duplicated: every record that was in the window when the pull started and was not touched while
it ran arrives exactly once, no record arrives twice, and every record the source lists in the
window afterwards was read (what the count check asks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concord.config import EntityConfig, SourceConfig
from concord.contracts import Window
from connectors.erp.rest import RestSource
from sandbox.server import Request
from sandbox.tryton_rest import TrytonRestServer
from tests.repo_config import REPO

Action = tuple[str, int]
actions = st.lists(
    st.tuples(st.sampled_from(["edit", "create", "archive", "delete", "none"]), st.integers(0, 99)),
    max_size=12,
)


@pytest.fixture(scope="module")
def server() -> Iterator[TrytonRestServer]:
    with TrytonRestServer() as srv:
        yield srv


def make_source(server: TrytonRestServer, page_size: int) -> RestSource:
    config = SourceConfig.model_validate(
        {
            "type": "rest",
            "profile": "tryton",
            "base_url": server.base_url,
            "auth": {"token": {"env": "FAKE_TRYTON_KEY"}},
            "page_size": page_size,
            "entities": {
                "customers": EntityConfig(
                    mapping=REPO / "mappings" / "tryton" / "party.yaml",
                    resource="party.party",
                    cursor_field="last_modified_at",
                )
            },
        }
    )
    config.name = "tryton"
    return RestSource.from_config(config)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(0, 25),
    page_size=st.integers(1, 7),
    same_time=st.booleans(),
    steps=actions,
)
def test_interleaved_edits_and_pages_lose_and_duplicate_nothing(
    server: TrytonRestServer,
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    page_size: int,
    same_time: bool,
    steps: list[Action],
) -> None:
    monkeypatch.setenv("FAKE_TRYTON_KEY", "tryton-key")
    server.models = {"party.party": {}}
    base = datetime.now(UTC) - timedelta(hours=1)
    for i in range(1, count + 1):  # same_time: many records share one last_modified_at
        at = base if same_time and i % 3 else base + timedelta(seconds=i)
        server.add("party.party", {"id": i, "name": f"p{i}"}, at=at)
    before = {r["id"] for r in server.records("party.party", active_only=True)}
    touched: set[int] = set()
    queue = list(steps)
    next_id = count + 1

    def interleave(srv: TrytonRestServer, model: str, request: Request) -> None:
        nonlocal next_id
        if not queue:
            return
        kind, pick = queue.pop(0)
        ids = sorted(srv.models["party.party"])
        if kind == "create":
            srv.add("party.party", {"id": next_id, "name": f"p{next_id}"})
            next_id += 1
        elif ids and kind != "none":
            rid = ids[pick % len(ids)]
            touched.add(rid)
            if kind == "edit":
                srv.edit("party.party", rid, name=f"p{rid} edited")
            elif kind == "archive":
                srv.edit("party.party", rid, active=False)
            else:
                srv.delete("party.party", rid)

    source = make_source(server, page_size)
    server.after_page = interleave
    end = datetime.now(UTC)
    try:
        received: list[int] = []
        for page in source.extract("customers", Window(None, end), None):
            received.extend(int(r["id"]) for r in page.records)
        server.after_page = None
        listed = source.count("customers", Window(None, end))
    finally:
        server.after_page = None
        source.close()
    assert len(received) == len(set(received)), "a record arrived twice"
    assert before - touched <= set(received), "a record untouched during the pull was lost"
    assert set(received) <= before, "a record outside the window arrived"
    assert listed is not None and listed.ids is not None
    assert {int(i) for i in listed.ids} <= set(received)


def test_the_profile_pages_parties_by_seek(
    server: TrytonRestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRYTON_KEY", "tryton-key")
    source = make_source(server, 5)
    try:
        assert source.seeks("customers")
        first: Any = source.first_request("customers", Window(None, None))
        assert first.headers["Range"] == "records=0-5"
    finally:
        source.close()
