"""The integration engineer's loop through the CLI: --json everywhere it matters, payloads whole,
--verbose anywhere, clean help, short ids taken back, preview without the ERP, remap on demand,
a dry run that changes nothing, and a run that goes partial when one source is down."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from concord.cli.app import app
from concord.cli.render import short_id
from concord.store import Store
from concord.store import tables as t
from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer
from tests.e2e.conftest import REPO, write_config

runner = CliRunner()


@pytest.fixture
def servers() -> Iterator[tuple[RestErpServer, CrmServer]]:
    with RestErpServer(ErpDataset.generate(seed=7, customers=20)) as erp, CrmServer() as crm:
        yield erp, crm


@pytest.fixture
def synced(tmp_path: Path, servers: tuple[RestErpServer, CrmServer]) -> Path:
    erp, crm = servers
    mapping = tmp_path / "customers.yaml"
    shutil.copy(REPO / "mappings" / "sandbox_erp" / "customers.yaml", mapping)
    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=f"sqlite:///{tmp_path / 's.db'}",
        erp_url=erp.url,
        crm_url=crm.url,
    )
    default = str(REPO / "mappings" / "sandbox_erp" / "customers.yaml")
    cfg.write_text(cfg.read_text().replace(default, str(mapping)))
    result = runner.invoke(app, ["sync", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    return cfg


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_rejects_customers_and_explain_speak_json(synced: Path) -> None:
    runs = json.loads(invoke("runs", "-c", str(synced), "--json"))
    assert runs[0]["status"] == "succeeded" and "stages" in runs[0]["report"]
    last = json.loads(invoke("runs", "--last", "--json", "-c", str(synced)))
    assert last["run_id"] == runs[0]["run_id"]
    rejects = json.loads(invoke("rejects", "-c", str(synced), "--json"))
    named = next(r for r in rejects if r["stage"] == "map" and r["field"] == "name")
    assert named["payload"]["id"] == named["source_id"]  # the payload as JSON, whole
    assert named["failing_paths"] == ["company"]
    [shown] = json.loads(
        invoke("customers", "show", "sandbox_erp:C-00004", "--json", "-c", str(synced))
    )
    assert shown["data"]["concord_id"] == shown["concord_id"]
    assert any(link["source_id"] == "C-00004" for link in shown["links"])
    why = json.loads(
        invoke(
            "customers",
            "explain",
            "sandbox_erp:C-00004",
            "sandbox_erp:C-00018",
            "--json",
            "-c",
            str(synced),
        )
    )
    assert why["same"] is True and why["verdict"]


def test_rejects_payload_is_whole_and_marks_the_failing_source_path(synced: Path) -> None:
    out = invoke("rejects", "-c", str(synced), "--payload")
    marked = [line for line in out.splitlines() if line.lstrip().startswith("▶")]
    assert any('"company": ""' in line for line in marked)  # C-00001: company is empty
    assert any("company: not in the payload" in line for line in marked)  # C-00002: no key
    assert "billing_address" in out and "created_at" in out


def test_a_short_concord_id_is_taken_back_by_show_and_explain(synced: Path) -> None:
    store = Store.open(f"sqlite:///{synced.parent / 's.db'}")
    with store.engine.connect() as conn:
        gid = conn.execute(select(t.customer360.c.concord_id).limit(1)).scalar_one()
    out = invoke("customers", "show", short_id(gid), "-c", str(synced))
    assert "Golden record" in out and gid in out


def test_verbose_is_accepted_anywhere_on_the_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    for args in (["sync", "--verbose", "-c", missing], ["sync", "-c", missing, "-v"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "Traceback" in result.output and "missing.yaml" in result.output


@pytest.mark.parametrize(
    "command", [["sync"], ["push"], ["rejects"], ["mappings", "preview"], ["sandbox", "up"], []]
)
def test_help_shows_flags_without_type_names(command: list[str]) -> None:
    out = invoke(*command, "--help")
    assert "<bool>" not in out and "--no-" not in out
    assert "--help" in out


def test_preview_staged_needs_no_network(
    synced: Path, servers: tuple[RestErpServer, CrmServer]
) -> None:
    erp, _ = servers
    erp.stop()  # the ERP is gone; the staged records are not
    out = invoke(
        "mappings",
        "preview",
        "sandbox_erp",
        "customers",
        "--staged",
        "--id",
        "C-00003",
        "-c",
        str(synced),
    )
    assert "(staged)" in out and '"C-00003"' in out and '"name"' in out


def test_remap_maps_staged_records_again_on_demand(synced: Path) -> None:
    mapping = synced.parent / "customers.yaml"
    text = mapping.read_text().replace(
        "  name: company ", "  name: {coalesce: [company, legal_name]} "
    )
    mapping.write_text(text)
    out = invoke("remap", "sandbox_erp/customers", "-c", str(synced))
    assert "20 staged records mapped again" in out
    rejects = json.loads(invoke("rejects", "--json", "-c", str(synced)))
    assert not [r for r in rejects if r["source_id"] == "C-00002" and r["stage"] == "map"]
    bad = runner.invoke(app, ["remap", "sandbox_erp/custmers", "-c", str(synced)])
    assert bad.exit_code == 1 and "not a source entity" in bad.output


def _fingerprint(db: Path) -> str:
    store = Store(f"sqlite:///{db}")
    digest = hashlib.sha256()
    with store.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    store.dispose()
    return digest.hexdigest()


def test_a_dry_run_changes_nothing_and_prints_the_plan(
    synced: Path, servers: tuple[RestErpServer, CrmServer]
) -> None:
    erp, crm = servers
    before, calls = _fingerprint(synced.parent / "s.db"), len(crm.requests)
    dataset: ErpDataset = erp.dataset  # type: ignore[attr-defined]
    dataset.update("customers", "C-00005", company="Renamed Holding AG")
    twin = {
        k: v for k, v in (dataset.get("customers", "C-00006") or {}).items() if k != "updated_at"
    }
    fresh = {"company": "Brand New GmbH", "legal_name": "Brand New GmbH", "vat_id": None}
    fresh |= {"email": "hello@brand-new.example", "phone": None, "crm_ref": None}
    dataset.add("customers", {**twin, "id": "C-09999", **fresh})  # no rule links it to C-00006
    out = invoke("sync", "--dry-run", "-c", str(synced))
    assert _fingerprint(synced.parent / "s.db") == before  # store, runs, watermarks as they were
    assert len(crm.requests) == calls  # no CRM call at all
    assert "Dry run" in out and "nothing was written" in out
    assert "Renamed Holding AG" in out and "Brand New GmbH" in out
    assert "sandbox_erp:C-09999" in out  # ERP numbers in the plan
    real = json.loads(invoke("runs", "--last", "--json", "-c", str(synced)))
    assert real["trigger"] == "cli"  # the last run is still the real one before the dry run


def test_one_source_down_leaves_the_others_and_ends_partial(
    tmp_path: Path, servers: tuple[RestErpServer, CrmServer]
) -> None:
    erp, crm = servers
    cfg = write_config(
        tmp_path / "c.yaml",
        store_url=f"sqlite:///{tmp_path / 's.db'}",
        erp_url=erp.url,
        crm_url=crm.url,
    )
    text = cfg.read_text()
    source = text[text.index("  sandbox_erp:") : text.index("targets:")]
    down = source.replace("  sandbox_erp:", "  down_erp:").replace(erp.url, "http://127.0.0.1:9")
    down = down.replace("backoff_base: 0.01", "backoff_base: 0.01, max_attempts: 1")
    cfg.write_text(text.replace("targets:", down + "targets:"))
    result = runner.invoke(app, ["sync", "-c", str(cfg)])
    assert result.exit_code == 2, result.output
    assert "partial" in result.output
    assert "failed: extract down_erp/customers" in result.output.replace("\n", " ")
    assert crm.batches  # the healthy source went all the way to the CRM
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    run = store.last_runs(1)[0]
    assert run["status"] == "partial"
    assert store.watermark("down_erp", "customers").cursor is None
    assert store.watermark("sandbox_erp", "customers").cursor is not None


def test_push_resync_restores_objects_deleted_in_the_crm(
    synced: Path, servers: tuple[RestErpServer, CrmServer]
) -> None:
    _, crm = servers
    expected = {k: dict(o["properties"]) for k, o in crm.objects["companies"].items()}
    for key in list(expected)[:4]:
        crm.delete_object("companies", key)
    plain = invoke("push", "-c", str(synced))
    assert "push to" in plain and len(crm.objects["companies"]) == len(expected) - 4
    out = invoke("push", "--resync", "-c", str(synced))
    assert "the CRM was missing 4" in out.replace("\n", " ")
    assert {k: dict(o["properties"]) for k, o in crm.objects["companies"].items()} == expected
    full = invoke("push", "--resync", "--full", "--target", "sandbox_crm", "-c", str(synced))
    assert "every customer re-sent" in full
    assert runner.invoke(app, ["push", "--full", "-c", str(synced)]).exit_code != 0


def test_a_dry_run_works_while_a_sync_holds_the_lock(synced: Path) -> None:
    from datetime import timedelta

    store = Store.open(f"sqlite:///{synced.parent / 's.db'}")
    store.acquire_lock("sync", "run_busy_elsewhere", stale_after=timedelta(hours=6))
    out = invoke("sync", "--dry-run", "-c", str(synced))
    assert "Dry run" in out
    with store.engine.connect() as conn:
        holder = conn.execute(select(t.locks.c.run_id)).scalar_one()
    assert holder == "run_busy_elsewhere"  # the real store's lock is untouched
