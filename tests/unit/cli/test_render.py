"""What the CLI shows reads well at 80 columns and on a wide terminal: nothing cut, drift and
failures listed in full below the tables, ids shortened one way, payloads whole and marked."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import orjson
import pytest
from rich.console import Console, RenderableType

from concord.cli.render import (
    LineProgress,
    customers_table,
    payload_text,
    rejects_view,
    run_summary,
    short_id,
)

LONG_PATHS = {f"SalesLines.Sales_Order_Line.Field_Number_{i}": 3 for i in range(8)}
REPORT: dict[str, Any] = {
    "run_id": "run_20261102T020000_1a2b3c",
    "stages": {
        "extract": {
            "sandbox_erp/customers": {"status": "succeeded", "records": 60, "new": 60},
            "a_source_with_a_long_name/customer_ledger_entries": {
                "status": "succeeded",
                "records": 1200,
                "new": 3,
                "changed": 1,
            },
            "sandbox_nav/orders": {"status": "failed", "error": "connection refused"},
        },
        "map": {
            "sandbox_erp/customers": {
                "status": "succeeded",
                "records": 60,
                "mapped": 58,
                "rejected": 2,
                "replayed": 60,
                "missing_fields": {"company": 1},
            },
            "a_source_with_a_long_name/customer_ledger_entries": {
                "status": "succeeded",
                "mapped": 4,
                "rejected": 0,
                "unmapped_fields": LONG_PATHS,
            },
        },
        "push": {
            "sandbox_crm": {"status": "succeeded", "planned": 75, "accepted": 75, "created": 75}
        },
        "reconcile": {"all": {"mismatches": [], "targets": [{"target": "sandbox_crm"}]}},
    },
    "failures": ["extract sandbox_nav/orders: connection refused"],
}


def rendered(renderable: RenderableType, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


@pytest.mark.parametrize("width", [80, 160])
def test_the_run_summary_wraps_instead_of_cutting(width: int) -> None:
    text = rendered(run_summary(REPORT, status="partial"), width)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert "…" not in text
    squashed = re.sub(r"\s+", "", text)
    assert "a_source_with_a_long_name" in squashed and "customer_ledger_entries" in squashed
    for path in LONG_PATHS:  # drift is listed in full below the table, not cut in a column
        assert f"+{path}(3)" in squashed
    assert "failed:extractsandbox_nav/orders:connectionrefused" in squashed
    assert "mappedagain" in squashed and "partial" in text


def test_the_summary_says_when_no_target_was_pushed() -> None:
    report = {"run_id": "r", "stages": {"reconcile": {"all": {"mismatches": [], "targets": []}}}}
    text = rendered(run_summary(report), 80)
    assert "no target in this run" in text and "every customer pushed" not in text


def test_the_summary_says_how_the_360_was_built() -> None:
    night = {"customers": 36169, "recomputed": 412, "recomputed_changed": 380}
    night |= {"recomputed_boundary": 32, "written": 36169}
    report = {"run_id": "r", "stages": {"build_360": {"all": night}}}
    text = " ".join(rendered(run_summary(report), 80).split())
    assert "360: 36,169 customers, 412 recomputed (380 changed, 32 past a date boundary)" in text
    first = {"customers": 60, "recomputed": 60, "full_reason": "first build", "written": 60}
    report = {"run_id": "r", "stages": {"build_360": {"all": first}}}
    assert "rebuilt in full (first build)" in rendered(run_summary(report), 80)


def _customer(i: int) -> dict[str, Any]:
    return {
        "concord_id": f"cc_{i:02d}1a2b3c4d5e6f7a8",
        "name": {"value": f"Redwood Components International Holdings {i}"},
        "source_ids": [f"sandbox_erp:C-000{i:02d}", f"sandbox_nav:1{i:04d}"],
        "orders_count": 9,
        "lifetime_revenue": "10287.06",
        "open_balance": "232.05",
        "value_tier": "A",
        "lifecycle_stage": "active",
        "base_currency": "EUR",
    }


@pytest.mark.parametrize("width", [80, 160])
def test_the_360_table_keeps_names_and_sources_whole(width: int) -> None:
    rows = [_customer(i) for i in range(3)]
    text = rendered(customers_table(rows), width)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert "…" not in text
    for row in rows:
        assert short_id(row["concord_id"]) in text
        assert row["concord_id"] not in text  # the short form, everywhere alike
        for sid in row["source_ids"]:
            assert sid in text
    words = text.split()
    assert "International" in words and "10,287.06" in words


def test_short_ids_are_the_prefix_and_leave_other_ids_alone() -> None:
    assert short_id("cc_1a2b3c4d5e6f7a8b9c") == "cc_1a2b3c4d"
    assert short_id("run_20261102T020000_1a2b3c") == "run_20261102T020000_1a2b3c"


def test_a_payload_is_shown_whole_with_the_failing_path_marked() -> None:
    payload = orjson.dumps(
        {
            "id": "C-1",
            "company": "",
            "notes": "x" * 300,
            "billing_address": {"street": "Main St 1", "zip": None},
        }
    )
    text = payload_text(payload, {"company", "billing_address.zip", "vat_id"}).plain
    lines = text.splitlines()
    assert next(line for line in lines if '"company"' in line).startswith("▶")
    assert next(line for line in lines if '"zip"' in line).startswith("▶")
    assert not next(line for line in lines if '"street"' in line).startswith("▶")
    assert "x" * 300 in text  # never truncated
    assert "▶ vat_id: not in the payload" in text


def test_rejects_show_reason_mapping_line_and_payload() -> None:
    row = {
        "id": 7,
        "stage": "map",
        "source": "sandbox_erp",
        "entity": "customers",
        "source_id": "C-00001",
        "field": "name",
        "reason": "required value missing",
        "location": "mappings/sandbox_erp/customers.yaml:8",
        "payload": orjson.dumps({"id": "C-00001", "company": ""}),
        "resolved_run": None,
    }
    text = rendered(rejects_view([row], payload=True, paths={7: {"company"}}), 80)
    assert "mappings/sandbox_erp/customers.yaml:8" in text
    assert '▶   "company": ""' in text


def test_progress_lines_show_a_long_stage_is_alive_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    with LineProgress(console, every=0.05) as progress:
        progress.on_event("stage", {"stage": "extract", "scope": "erp/orders"})
        progress.on_event("page", {"records": 200})
        time.sleep(0.3)
    text = out.getvalue()
    assert text.startswith("extract erp/orders ...")
    assert "... extract erp/orders: 200 records" in text


def test_progress_lines_keep_concurrent_pulls_apart_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    with LineProgress(console, every=0.05) as progress:
        progress.on_event("stage", {"stage": "extract", "scope": "erp_a/orders"})
        progress.on_event("stage", {"stage": "extract", "scope": "erp_b/orders"})
        progress.on_event("page", {"source": "erp_a", "entity": "orders", "records": 300})
        progress.on_event("page", {"source": "erp_b", "entity": "orders", "records": 50})
        progress.on_event("page", {"source": "erp_a", "entity": "orders", "records": 300})
        time.sleep(0.3)
    text = out.getvalue()
    assert "... extract erp_a/orders: 600 records" in text
    assert "... extract erp_b/orders: 50 records" in text


def counted_report(source: int, staged: int) -> dict[str, Any]:
    agree = source == staged
    entity = {"source": "tryton", "entity": "customers", "source_count": source}
    return {
        "run_id": "run_20261201T020000_abcdef",
        "stages": {
            "extract": {
                "tryton/customers": {
                    "status": "succeeded",
                    "records": 30,
                    "source_count": source,
                    "staged_count": staged,
                    "count_how": "id listing",
                    "count_check": "agree" if agree else "mismatch",
                    "left_window": 2,
                }
            },
            "reconcile": {
                "all": {
                    "status": "succeeded",
                    "entities": [{**entity, "staged_count": staged}],
                    "mismatches": []
                    if agree
                    else [f"tryton/customers: the source holds {source} records in the window"],
                }
            },
        },
    }


def test_runs_last_shows_source_and_staged_counts_and_reconciled_only_when_they_agree() -> None:
    ok = rendered(run_summary(counted_report(28, 28)), 80)
    assert "tryton/customers: source 28, staged 28 (id listing" in ok
    assert "2 changed during the pull" in ok
    assert "reconciled: source = staged" in ok
    bad = rendered(run_summary(counted_report(30, 29)), 80)
    assert "source 30, staged 29" in bad and "the source holds 30" in bad
    assert "reconciled" not in bad.replace("reconciliation", "")
