"""Fixtures for whole-sync tests: sandbox servers and a pipeline config pointing at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.crm import CrmServer
from sandbox.erp_data import ErpDataset
from sandbox.rest_erp import RestErpServer

REPO = Path(__file__).resolve().parents[2]


def write_config(
    path: Path,
    *,
    store_url: str,
    erp_url: str,
    crm_url: str,
    page_size: int = 50,
    batch_size: int = 100,
    reject_ratio: float = 0.1,
    reject_min_count: int = 5,
) -> Path:
    """A config with the sandbox ERP source and CRM target, using the repo's mappings."""
    m = REPO / "mappings"
    entities = "\n".join(
        f"      {e}: {{path: /api/v1/{e}, mapping: {m / 'sandbox_erp' / (e + '.yaml')}}}"
        for e in ("customers", "orders", "shipments", "invoices", "payments")
    )
    path.write_text(f"""\
store_url: {store_url}
base_currency: EUR
fx_rates: {{USD: "0.92", GBP: "1.17"}}
reject_ratio: {reject_ratio}
reject_min_count: {reject_min_count}
sources:
  sandbox_erp:
    type: rest
    base_url: {erp_url}
    auth: {{type: bearer, token: {{env: SANDBOX_ERP_TOKEN}}}}
    paginator: {{type: cursor, cursor_path: next_cursor, cursor_param: cursor}}
    page_size: {page_size}
    incremental: {{start_param: updated_since, end_param: updated_before}}
    http: {{backoff_base: 0.01}}
    entities:
{entities}
targets:
  sandbox_crm:
    type: hubspot
    base_url: {crm_url}
    auth: {{type: bearer, token: {{env: SANDBOX_CRM_TOKEN}}}}
    mapping: {m / "crm" / "sandbox_crm.yaml"}
    batch_size: {batch_size}
""")
    return path


@pytest.fixture
def dataset() -> ErpDataset:
    return ErpDataset.generate(seed=7, customers=40)


@pytest.fixture
def erp(dataset: ErpDataset) -> Iterator[RestErpServer]:
    with RestErpServer(dataset) as server:
        yield server


@pytest.fixture
def crm() -> Iterator[CrmServer]:
    with CrmServer() as server:
        yield server
