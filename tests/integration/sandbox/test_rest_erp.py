"""Integration tests of the REST ERP sandbox over loopback HTTP: auth, keyset paging in (updated_at,
id) order, time windows, incremental pulls seeing updates, parameter errors, the generated data
(determinism, valid VAT ids, messy cases), fault injection and the `python -m sandbox` entry
point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat

from sandbox import ENTITIES, ErpDataset, Fault, RestErpServer
from sandbox.erp_data import parse_iso

TOKEN = "sandbox-erp-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 5
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def dataset() -> ErpDataset:
    return ErpDataset.generate(seed=7, customers=60)


@pytest.fixture
def erp(dataset: ErpDataset) -> Iterator[RestErpServer]:
    with RestErpServer(dataset) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(AUTH)
        yield s


def get(session: requests.Session, url: str, **params: Any) -> requests.Response:
    return session.get(url, params=params, timeout=TIMEOUT)


def pull(
    session: requests.Session, erp: RestErpServer, entity: str, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Follow next_cursor to the end; returns records and the number of pages."""
    records: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = get(session, f"{erp.url}/api/v1/{entity}", **query)
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return records, pages


def key(record: dict[str, Any]) -> tuple[datetime, str]:
    return parse_iso(record["updated_at"]), record["id"]


def test_requests_without_the_bearer_token_are_unauthorized(erp: RestErpServer) -> None:
    missing = requests.get(f"{erp.url}/api/v1/customers", timeout=TIMEOUT)
    wrong = requests.get(
        f"{erp.url}/api/v1/customers",
        headers={"Authorization": "Bearer nope"},
        timeout=TIMEOUT,
    )
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": "unauthorized"}
    assert missing.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("entity", ENTITIES)
def test_cursor_pages_cover_all_records_once_in_order(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset, entity: str
) -> None:
    records, pages = pull(session, erp, entity, limit=37)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == dataset.count(entity)
    assert [key(r) for r in records] == sorted(key(r) for r in records)
    assert pages == dataset.count(entity) // 37 + 1


def test_page_shorter_than_limit_has_no_next_cursor(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset
) -> None:
    body = get(session, f"{erp.url}/api/v1/customers", limit=1000).json()
    assert len(body["data"]) == dataset.count("customers")
    assert body["next_cursor"] is None


def test_default_limit_is_100(erp: RestErpServer, session: requests.Session) -> None:
    body = get(session, f"{erp.url}/api/v1/orders").json()
    assert len(body["data"]) == 100
    assert body["next_cursor"] is not None


def test_updated_since_is_inclusive_and_updated_before_exclusive(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset
) -> None:
    everything = list(dataset.iter_all("orders"))
    since = everything[50]["updated_at"]
    before = everything[150]["updated_at"]
    window, _ = pull(session, erp, "orders", updated_since=since, updated_before=before, limit=30)
    start, end = parse_iso(since), parse_iso(before)
    expected = [r["id"] for r in everything if start <= parse_iso(r["updated_at"]) < end]
    assert [r["id"] for r in window] == expected
    assert window[0]["updated_at"] == since
    assert all(r["updated_at"] != before for r in window)


def test_count_answers_how_many_records_the_same_window_holds(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset
) -> None:
    everything = list(dataset.iter_all("orders"))
    since, before = everything[50]["updated_at"], everything[150]["updated_at"]
    window, _ = pull(session, erp, "orders", updated_since=since, updated_before=before, limit=30)
    counted = get(
        session, f"{erp.url}/api/v1/orders/_count", updated_since=since, updated_before=before
    )
    assert counted.status_code == 200 and counted.json() == {"count": len(window)}
    whole = get(session, f"{erp.url}/api/v1/orders/_count").json()
    assert whole == {"count": len(everything)}


def test_update_after_first_page_is_seen_by_later_incremental_pull(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset
) -> None:
    started = dataset.now
    first = get(session, f"{erp.url}/api/v1/customers", limit=10).json()
    changed_id = first["data"][0]["id"]  # already pulled on page 1
    dataset.update("customers", changed_id, email="new@example.com")
    rest, _ = pull(session, erp, "customers", limit=10, cursor=first["next_cursor"])
    seen = [r["id"] for r in first["data"] + rest]
    assert seen.count(changed_id) == 2  # moved behind the cursor, so seen again in this run
    later, _ = pull(session, erp, "customers", updated_since=started.isoformat())
    assert [(r["id"], r["email"]) for r in later] == [(changed_id, "new@example.com")]


def test_pages_stay_correct_when_a_record_moves_during_paging(
    erp: RestErpServer, session: requests.Session, dataset: ErpDataset
) -> None:
    first = get(session, f"{erp.url}/api/v1/invoices", limit=50).json()
    unseen = list(dataset.iter_all("invoices"))[120]["id"]
    dataset.update("invoices", unseen, state="paid", amount_due="0.00")
    rest, _ = pull(session, erp, "invoices", limit=50, cursor=first["next_cursor"])
    ids = [r["id"] for r in first["data"] + rest]
    assert len(ids) == len(set(ids)) == dataset.count("invoices")
    assert ids[-1] == unseen


def test_single_record_by_id(erp: RestErpServer, session: requests.Session) -> None:
    response = get(session, f"{erp.url}/api/v1/orders/SO-000001")
    assert response.status_code == 200
    assert response.json()["id"] == "SO-000001"
    assert get(session, f"{erp.url}/api/v1/orders/SO-999999").status_code == 404


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # valid base64 of [1,2]: wrong shape
        ({"updated_since": "31/02/2025"}, "updated_since"),
        ({"updated_before": "yesterday"}, "updated_before"),
    ],
)
def test_bad_parameters_are_rejected_with_400(
    erp: RestErpServer, session: requests.Session, params: dict[str, Any], fragment: str
) -> None:
    response = get(session, f"{erp.url}/api/v1/orders", **params)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_unknown_entity_is_404(erp: RestErpServer, session: requests.Session) -> None:
    response = get(session, f"{erp.url}/api/v1/widgets")
    assert response.status_code == 404
    assert "error" in response.json()


def test_requests_are_counted_per_path(erp: RestErpServer, session: requests.Session) -> None:
    pull(session, erp, "payments", limit=200)
    assert erp.request_count("/api/v1/payments") == len(erp.requests) >= 2
    assert erp.requests[0] == ("GET", "/api/v1/payments?limit=200")


def test_server_errors_then_success(erp: RestErpServer, session: requests.Session) -> None:
    erp.faults.append(Fault(status=500, times=2))
    url = f"{erp.url}/api/v1/customers"
    assert [get(session, url).status_code for _ in range(3)] == [500, 500, 200]
    assert erp.faults == []


def test_rate_limit_fault_carries_retry_after(
    erp: RestErpServer, session: requests.Session
) -> None:
    erp.faults.append(Fault(status=429, retry_after=1, path="/api/v1/orders"))
    assert get(session, f"{erp.url}/api/v1/customers").status_code == 200
    limited = get(session, f"{erp.url}/api/v1/orders")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert get(session, f"{erp.url}/api/v1/orders").status_code == 200


def test_truncated_body_and_reset_connection_fail_on_the_client(erp: RestErpServer) -> None:
    erp.faults.extend([Fault(kind="truncate"), Fault(kind="reset")])
    url = f"{erp.url}/api/v1/orders"
    for _ in range(2):
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, headers=AUTH, timeout=TIMEOUT).json()
    assert requests.get(url, headers=AUTH, timeout=TIMEOUT).status_code == 200


def test_stop_closes_the_port(dataset: ErpDataset) -> None:
    server = RestErpServer(dataset)
    url = server.url
    server.stop()
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=TIMEOUT)


# -- the generated data -------------------------------------------------------------------------


def test_same_seed_gives_same_data_and_another_seed_differs() -> None:
    a, b, c = (ErpDataset.generate(seed=s) for s in (7, 7, 8))
    for entity in ENTITIES:
        assert list(a.iter_all(entity)) == list(b.iter_all(entity))
    assert list(a.iter_all("customers")) != list(c.iter_all("customers"))
    assert a.messy == b.messy


def test_every_record_has_id_and_utc_updated_at(dataset: ErpDataset) -> None:
    for entity in ENTITIES:
        for record in dataset.iter_all(entity):
            assert record["id"]
            assert record["updated_at"].endswith("Z")
            assert parse_iso(record["updated_at"]) < dataset.now


def test_payload_keys_are_exactly_the_documented_ones(dataset: ErpDataset) -> None:
    expected = {
        "customers": "id company legal_name vat_id country email phone billing_address currency "
        "type crm_ref created_at updated_at",
        "orders": "id number customer_id order_date state currency amount_untaxed amount_tax "
        "amount_total lines updated_at",
        "shipments": "id number order_id customer_id ship_date delivery_date promised_date "
        "carrier tracking_no state updated_at",
        "invoices": "id number order_id customer_id invoice_date due_date currency amount_total "
        "amount_due state type updated_at",
        "payments": "id reference customer_id invoice_id payment_date currency amount method "
        "state updated_at",
    }
    absent = {("customers", "company"), ("payments", "currency")}  # the messy cases
    for entity, names in expected.items():
        for record in dataset.iter_all(entity):
            missing = {(entity, k) for k in set(names.split()) - record.keys()}
            assert missing <= absent
            assert record.keys() <= set(names.split())


def test_vat_ids_are_valid(dataset: ErpDataset) -> None:
    vat_ids = [c["vat_id"] for c in dataset.iter_all("customers") if c["vat_id"]]
    assert len(vat_ids) > 20
    for vat_id in vat_ids:
        valid = gb_vat.is_valid(vat_id) if vat_id.startswith("GB") else eu_vat.is_valid(vat_id)
        assert valid, vat_id


def test_order_lines_add_up_and_amounts_are_two_decimal_strings(dataset: ErpDataset) -> None:
    bad_amount = {i for _, i in dataset.messy["bad_amount"]}
    for order in dataset.iter_all("orders"):
        assert 1 <= len(order["lines"]) <= 4
        lines = sum(Decimal(x["unit_price"]) * x["qty"] for x in order["lines"])
        assert Decimal(order["amount_untaxed"]) == lines
        if order["id"] not in bad_amount:
            total = Decimal(order["amount_untaxed"]) + Decimal(order["amount_tax"])
            assert order["amount_total"] == f"{total:.2f}"


def test_paid_invoices_match_their_done_payments(dataset: ErpDataset) -> None:
    paid: dict[str, Decimal] = {}
    for payment in dataset.iter_all("payments"):
        if payment["state"] in ("done", "refunded"):
            paid[payment["invoice_id"]] = paid.get(payment["invoice_id"], Decimal(0)) + Decimal(
                payment["amount"]
            )
    invoices = [i for i in dataset.iter_all("invoices") if i["type"] == "invoice"]
    for invoice in invoices:
        if invoice["state"] in ("paid", "posted"):
            due = Decimal(invoice["amount_total"]) - paid.get(invoice["id"], Decimal(0))
            assert Decimal(invoice["amount_due"]) == due, invoice["id"]
    assert dataset.totals("invoices", "amount_total", state="paid") > 0


def test_most_orders_are_shipped_and_invoiced_and_a_quarter_of_customers_lapsed(
    dataset: ErpDataset,
) -> None:
    orders = list(dataset.iter_all("orders"))
    shipped = {s["order_id"] for s in dataset.iter_all("shipments")}
    invoiced = {i["order_id"] for i in dataset.iter_all("invoices")}
    assert len(shipped) > 0.7 * len(orders)
    assert len(invoiced) > 0.7 * len(orders)
    recent = dataset.now - timedelta(days=365)
    last_order: dict[str, datetime] = {}
    for order in orders:
        try:
            at = parse_iso(order["order_date"])
        except ValueError:
            continue
        last_order[order["customer_id"]] = max(at, last_order.get(order["customer_id"], at))
    customers = [c["id"] for c in dataset.iter_all("customers")]
    lapsed = [c for c in customers if last_order.get(c, datetime.min.replace(tzinfo=UTC)) < recent]
    assert 0.12 * len(customers) <= len(lapsed) <= 0.4 * len(customers)


def test_messy_cases_are_present(dataset: ErpDataset) -> None:
    messy = dataset.messy
    assert {k: len(v) for k, v in messy.items()} == {
        "missing_company": 2,
        "bad_order_date": 1,
        "bad_amount": 1,
        "payment_missing_currency": 1,
        "duplicate_customers": 3,
        "orphan_order": 1,
    }
    nameless = [dataset.get(e, i) or {} for e, i in messy["missing_company"]]
    assert [c.get("company", "<absent>") for c in nameless] == ["", "<absent>"]
    ((_, bad_date),) = messy["bad_order_date"]
    assert (dataset.get("orders", bad_date) or {})["order_date"] == "31/02/2025"
    ((_, bad_amount),) = messy["bad_amount"]
    assert (dataset.get("orders", bad_amount) or {})["amount_total"] == "12,50 EUR"
    ((_, payment),) = messy["payment_missing_currency"]
    assert "currency" not in (dataset.get("payments", payment) or {})
    ((_, orphan),) = messy["orphan_order"]
    assert dataset.get("customers", (dataset.get("orders", orphan) or {})["customer_id"]) is None
    for _, dup_id in messy["duplicate_customers"]:
        dup = dataset.get("customers", dup_id) or {}
        original = dataset.get("customers", dataset.duplicate_of[dup_id]) or {}
        assert dup["company"] != original["company"]
        assert (
            " ".join(dup["company"].lower().replace(".", "").split())[:8]
            == " ".join(original["company"].lower().split())[:8]
        )
        same_email = dup["email"].lower() == original["email"].lower()
        assert same_email or dup["vat_id"] == original["vat_id"] is not None


def test_update_advances_the_clock_and_add_inserts(dataset: ErpDataset) -> None:
    first = dataset.update("orders", "SO-000001", state="cancel")
    second = dataset.update("orders", "SO-000002", state="cancel")
    assert dataset.now < parse_iso(first["updated_at"]) < parse_iso(second["updated_at"])
    tail = dataset.page("orders", updated_since=dataset.now, limit=10)
    assert [r["id"] for r in tail] == ["SO-000001", "SO-000002"]
    added = dataset.add("customers", {"id": "C-90000", "company": "Neu GmbH"})
    assert dataset.get("customers", "C-90000") == added
    assert parse_iso(added["updated_at"]) > parse_iso(second["updated_at"])


# -- entry point ------------------------------------------------------------------------------


def test_module_entry_point_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SANDBOX_ERP_TOKEN": "from-env"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "erp", "--port", "0", "--customers", "20"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        headers = {"Authorization": "Bearer from-env"}
        response = requests.get(f"{url}/api/v1/customers", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200
        assert len(response.json()["data"]) == 20
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_stop_also_ends_open_keep_alive_connections(
    dataset: ErpDataset, session: requests.Session
) -> None:
    server = RestErpServer(dataset)
    url = f"{server.url}/api/v1/customers"
    assert get(session, url).status_code == 200  # the session now holds a keep-alive connection
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        get(session, url)
