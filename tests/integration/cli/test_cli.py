"""The CLI as a user runs it: sync, runs, rejects, customers show, schema, and clear errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from concord.cli.app import app
from concord.config import load_config
from concord.mapping import load_mapping
from concord.store import Store
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.e2e.conftest import write_config

runner = CliRunner()


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[Path]:
    with RestErpServer(ErpDataset.generate(seed=7, customers=20)) as erp, CrmServer() as crm:
        cfg = write_config(
            tmp_path / "c.yaml",
            store_url=f"sqlite:///{tmp_path / 's.db'}",
            erp_url=erp.url,
            crm_url=crm.url,
        )
        result = runner.invoke(app, ["sync", "-c", str(cfg), "--until", "2026-11-02T00:00:00Z"])
        assert result.exit_code == 0, result.output
        yield cfg


def test_sync_prints_counts_per_source_entity(tmp_path: Path) -> None:
    with RestErpServer(ErpDataset.generate(seed=7, customers=20)) as erp, CrmServer() as crm:
        cfg = write_config(
            tmp_path / "c.yaml",
            store_url=f"sqlite:///{tmp_path / 's.db'}",
            erp_url=erp.url,
            crm_url=crm.url,
        )
        result = runner.invoke(app, ["sync", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("source / entity") :]
    assert "sandbox_erp" in table and "  orders" in table
    assert "push to" in table and "sandbox_crm" in table


def test_runs_last_shows_the_summary(synced: Path) -> None:
    result = runner.invoke(app, ["runs", "-c", str(synced), "--last"])
    assert result.exit_code == 0
    assert "sandbox_erp" in result.output and "  customers" in result.output
    assert "succeeded" in result.output


def test_runs_lists_status(synced: Path) -> None:
    result = runner.invoke(app, ["runs", "-c", str(synced)])
    assert "succeeded" in result.output


def test_rejects_lists_reason_field_and_payload(synced: Path) -> None:
    result = runner.invoke(app, ["rejects", "-c", str(synced), "--payload"])
    assert result.exit_code == 0
    assert "sandbox_erp/customers" in result.output
    assert "field name" in result.output
    assert '"id":"C-00001"' in result.output.replace(" ", "")


def test_a_mapping_reject_names_the_mapping_file_and_line_of_its_field(synced: Path) -> None:
    store = Store.open(load_config(synced).store_url)
    rejects = [r for r in store.rejects(limit=100) if r["stage"] == "map"]
    assert rejects
    for r in rejects:
        mapping = load_mapping(Path(r["location"].rsplit(":", 1)[0]))
        assert r["location"] == mapping.location(r["field"])
        assert re.search(r"\.yaml:\d+$", r["location"]), r["location"]


def test_customers_show_finds_by_source_key(synced: Path) -> None:
    result = runner.invoke(app, ["customers", "show", "sandbox_erp:C-00004", "-c", str(synced)])
    assert result.exit_code == 0, result.output
    assert "Golden record" in result.output and "360 metrics" in result.output
    assert "sandbox_erp:C-00004" in result.output


def test_customers_show_unknown_exits_non_zero(synced: Path) -> None:
    result = runner.invoke(app, ["customers", "show", "no-such-customer-xyz", "-c", str(synced)])
    assert result.exit_code == 1


def test_schema_exports_every_canonical_model() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    defs = json.loads(result.output)["$defs"]
    assert {
        "Customer",
        "Order",
        "OrderLine",
        "Shipment",
        "Invoice",
        "Payment",
        "Customer360",
    } <= set(defs)


def test_broken_config_prints_one_line_with_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sources:\n  erp:\n    type: rest\n    entities: 12\n")
    result = runner.invoke(app, ["sync", "-c", str(cfg)])
    assert result.exit_code == 1
    assert "bad.yaml:4" in result.output and "sources.erp.entities" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["sync"],
        ["push", "--dry-run"],
        ["runs"],
        ["customers", "show", "x"],
        ["mappings", "preview", "erp", "orders"],
    ],
)
def test_every_command_prints_errors_one_way_and_verbose_adds_the_trace(
    tmp_path: Path, command: list[str]
) -> None:
    missing = str(tmp_path / "missing.yaml")
    plain = runner.invoke(app, [*command, "-c", missing])
    assert plain.exit_code == 1
    assert "error:" in plain.output and "missing.yaml" in plain.output
    assert "Traceback" not in plain.output
    verbose = runner.invoke(app, ["--verbose", *command, "-c", missing])
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.output and "missing.yaml" in verbose.output


def test_mappings_validate_and_test_pass_for_the_repo() -> None:
    from tests.e2e.conftest import REPO

    validate = runner.invoke(app, ["mappings", "validate", str(REPO / "mappings" / "sandbox_erp")])
    assert validate.exit_code == 0, validate.output
    assert "0 invalid" in validate.output
    cases = runner.invoke(app, ["mappings", "test", str(REPO / "mappings" / "sandbox_erp")])
    assert cases.exit_code == 0, cases.output
    assert " 0 failed" in cases.output


def test_mappings_validate_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "orders.yaml"
    bad.write_text("direction: inbound\nentity: orders\nid: id\nfields:\n  nummber: number\n")
    result = runner.invoke(app, ["mappings", "validate", str(bad)])
    assert result.exit_code == 1
    assert "orders.yaml:5" in result.output and "nummber" in result.output


def test_mappings_preview_shows_live_input_and_output(tmp_path: Path) -> None:
    with RestErpServer(ErpDataset.generate(seed=7, customers=20)) as erp, CrmServer() as crm:
        cfg = write_config(
            tmp_path / "c.yaml",
            store_url=f"sqlite:///{tmp_path / 's.db'}",
            erp_url=erp.url,
            crm_url=crm.url,
        )
        result = runner.invoke(
            app, ["mappings", "preview", "sandbox_erp", "orders", "-c", str(cfg), "--limit", "3"]
        )
    assert result.exit_code == 0, result.output
    assert result.output.count('"amount_total"') == 3
    assert '"gross_total"' in result.output


def test_mappings_infer_drafts_a_mapping(tmp_path: Path) -> None:
    sample = tmp_path / "sample.json"
    sample.write_text(
        json.dumps(
            [
                {
                    "id": "7",
                    "company": "Acme",
                    "email": "a@acme.test",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
            ]
        )
    )
    result = runner.invoke(app, ["mappings", "infer", str(sample), "--entity", "customers"])
    assert result.exit_code == 0, result.output
    assert "direction: inbound" in result.output and "company" in result.output


def test_customers_explain_names_the_rule_between_duplicates(synced: Path) -> None:
    result = runner.invoke(
        app,
        ["customers", "explain", "sandbox_erp:C-00004", "sandbox_erp:C-00018", "-c", str(synced)],
    )
    assert result.exit_code == 0, result.output
    assert "sandbox_erp:C-00004" in result.output and "sandbox_erp:C-00018" in result.output
    assert "same customer" in result.output.lower()
