"""Network faults between concord and the sandbox ERP and CRM, injected by `FaultProxy`: each
ends in success after retries, or in a clean failure that a rerun completes; either way the store
and the CRM end exactly as after a clean run, with nothing lost or duplicated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concord.errors import ConcordError
from sandbox.fault_proxy import FaultProxy, Toxic
from tests.reliability.conftest import Sandbox, assert_same_as_clean, sync, write_config

ERP_LIST = "/api/v1/"
CRM_UPSERT = "/crm/v3/objects/companies/batch/upsert"


@pytest.fixture
def proxies(sandbox: Sandbox) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with FaultProxy(sandbox.erp.url) as erp, FaultProxy(sandbox.crm.url) as crm:
        yield erp, crm


@pytest.fixture
def config(tmp_path: Path, store_url: str, proxies: tuple[FaultProxy, FaultProxy]) -> Path:
    erp, crm = proxies
    return write_config(
        tmp_path / "concord.yaml", store_url=store_url, erp_url=erp.url, crm_url=crm.url
    )


ERP_FAULTS = {
    "latency": Toxic("latency", path=ERP_LIST, delay=0.2, every=3, times=5),
    "reset": Toxic("reset", path=ERP_LIST, every=2, times=3),
    "status_500": Toxic("status", path=ERP_LIST, status=500, every=2, times=3),
    "status_503": Toxic("status", path=ERP_LIST, status=503, times=2),
    "rate_limited_429": Toxic("status", path=ERP_LIST, status=429, retry_after=1, times=2),
    "truncated_body": Toxic("truncate", path=ERP_LIST, every=3, times=3),
    "slow_drip": Toxic("drip", path=ERP_LIST, delay=0.002, chunk=1024, every=4, times=3),
}


@pytest.mark.parametrize("fault", list(ERP_FAULTS))
def test_erp_fault_is_retried_to_the_clean_state(
    fault: str,
    clean: dict[str, Any],
    sandbox: Sandbox,
    proxies: tuple[FaultProxy, FaultProxy],
    config: Path,
    store_url: str,
) -> None:
    erp, _ = proxies
    toxic = erp.add(Toxic(**{**ERP_FAULTS[fault].__dict__, "seen": 0, "fired": 0}))
    report = sync(config)
    assert toxic.fired == toxic.times, "the fault never hit"
    assert report["stages"]["extract"]
    assert_same_as_clean(clean, store_url, sandbox.crm)


CRM_FAULTS = {
    "reset_before_upsert": Toxic("reset", path=CRM_UPSERT, times=2),
    "reset_after_upsert_handled": Toxic("reset", path=CRM_UPSERT, after_upstream=True, times=2),
    "status_500": Toxic("status", path=CRM_UPSERT, status=500, times=2),
    "rate_limited_429": Toxic("status", path=CRM_UPSERT, status=429, retry_after=1, times=1),
    "truncated_answer": Toxic("truncate", path=CRM_UPSERT, times=2),
    "latency": Toxic("latency", path=CRM_UPSERT, delay=0.2, times=2),
}


@pytest.mark.parametrize("fault", list(CRM_FAULTS))
def test_crm_fault_is_retried_without_duplicates(
    fault: str,
    clean: dict[str, Any],
    sandbox: Sandbox,
    proxies: tuple[FaultProxy, FaultProxy],
    config: Path,
    store_url: str,
) -> None:
    _, crm = proxies
    toxic = crm.add(Toxic(**{**CRM_FAULTS[fault].__dict__, "seen": 0, "fired": 0}))
    sync(config)
    assert toxic.fired == toxic.times, "the fault never hit"
    assert_same_as_clean(clean, store_url, sandbox.crm)


def _run_expecting_failure(config: Path) -> str | None:
    """Run a sync that may fail; return the error message, or None if it did not raise."""
    try:
        sync(config)
    except ConcordError as exc:
        return exc.message
    return None


def test_erp_down_fails_cleanly_and_a_rerun_completes(
    clean: dict[str, Any],
    sandbox: Sandbox,
    proxies: tuple[FaultProxy, FaultProxy],
    config: Path,
    store_url: str,
) -> None:
    erp, _ = proxies
    erp.add(Toxic("status", path="/api/v1/shipments", status=503, times=None))
    message = _run_expecting_failure(config)
    assert message is not None and "shipments" in message
    assert "sandbox-erp-token" not in message
    erp.clear()
    sync(config)
    assert_same_as_clean(clean, store_url, sandbox.crm)


def test_erp_resetting_mid_extract_fails_cleanly_and_a_rerun_resumes(
    clean: dict[str, Any],
    sandbox: Sandbox,
    proxies: tuple[FaultProxy, FaultProxy],
    config: Path,
    store_url: str,
) -> None:
    erp, _ = proxies
    first_pages = erp.add(Toxic("latency", path="/api/v1/orders", times=3))
    erp.add(Toxic("reset", path="/api/v1/orders", times=None))
    assert _run_expecting_failure(config) is not None
    assert first_pages.fired == 3
    erp.clear()
    sync(config)
    assert_same_as_clean(clean, store_url, sandbox.crm)


def test_crm_down_fails_cleanly_and_a_rerun_pushes_the_rest(
    clean: dict[str, Any],
    sandbox: Sandbox,
    proxies: tuple[FaultProxy, FaultProxy],
    config: Path,
    store_url: str,
) -> None:
    _, crm = proxies
    crm.add(Toxic("latency", path=CRM_UPSERT, times=2))  # two batches get through
    crm.add(Toxic("status", path=CRM_UPSERT, status=500, times=None))
    message = _run_expecting_failure(config)
    before = len(sandbox.crm.objects["companies"])
    assert 0 < before < len(clean["crm"]["companies"])
    crm.clear()
    sync(config)
    if message is None:  # a push that records failures instead of raising: the rerun retries
        pass
    assert_same_as_clean(clean, store_url, sandbox.crm)
