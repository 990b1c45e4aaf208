"""The fast lxml reader against canned SOAP bodies, compared with zeep's reading of the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zeep

from connectors.erp.soap_response import (
    ResponsePlan,
    ResponseProblem,
    find_fault,
    read_with_lxml,
    read_with_zeep,
    refuse_dtd,
    zeep_xml_parser,
)
from sandbox.soap_erp import fault_xml

WSDL = Path(__file__).resolve().parents[3] / "sandbox" / "wsdl"
NS = "urn:microsoft-dynamics-schemas/page/salesorder"
ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture(scope="module")
def client() -> Any:
    return zeep.Client(
        str(  # type: ignore[no-untyped-call]
            WSDL / "sales_order.wsdl"
        )
    )


@pytest.fixture(scope="module")
def plan(client: Any) -> ResponsePlan:
    op = client.service._binding.get("ReadMultiple")
    return ResponsePlan.build("ReadMultiple", op.output.body, "ReadMultiple_Result.SalesOrder")


def body(inner: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><ReadMultiple_Result xmlns="{NS}">'
        f"<ReadMultiple_Result>{inner}</ReadMultiple_Result></ReadMultiple_Result></s:Body>"
        "</s:Envelope>"
    ).encode()


ORDER = (
    "<SalesOrder><No>S-1</No><Order_Date>2026-01-31</Order_Date><Status>Open</Status>"
    "<Currency_Code>USD</Currency_Code>"
    "<SalesLines><Sales_Order_Line><No>1000</No><Quantity>2</Quantity><Line_No>10000</Line_No>"
    "<Total_Amount_Incl_VAT>10.50</Total_Amount_Incl_VAT></Sales_Order_Line>"
    "<Sales_Order_Line><No>1100</No></Sales_Order_Line></SalesLines></SalesOrder>"
)


def test_lxml_reader_gives_every_declared_field_with_nested_lists(plan: ResponsePlan) -> None:
    [order] = read_with_lxml(body(ORDER), plan)
    assert order["No"] == "S-1" and order["Currency_Code"] == "USD" and order["Key"] is None
    lines = order["SalesLines"]["Sales_Order_Line"]
    assert [line["No"] for line in lines] == ["1000", "1100"]
    assert lines[0]["Total_Amount_Incl_VAT"] == "10.50" and lines[0]["Line_No"] == 10000
    assert lines[1]["Quantity"] is None


def test_lxml_and_zeep_read_the_same_dicts(client: Any, plan: ResponsePlan) -> None:
    doc = body(ORDER + ORDER.replace("S-1", "S-2"))
    zeep_records = read_with_zeep(doc, plan, client.wsdl.types, zeep_xml_parser(client))
    assert read_with_lxml(doc, plan) == zeep_records
    assert len(zeep_records) == 2


def test_an_empty_result_without_the_list_element_is_no_records(plan: ResponsePlan) -> None:
    empty = (
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><ReadMultiple_Result xmlns="{NS}"/></s:Body>'
        "</s:Envelope>"
    )
    assert read_with_lxml(empty.encode(), plan) == []


def test_a_fault_in_a_200_body_is_reported_as_a_fault(plan: ResponsePlan) -> None:
    with pytest.raises(ResponseProblem) as err:
        read_with_lxml(fault_xml("Kaputt"), plan)
    assert err.value.kind == "fault" and "Kaputt" in err.value.text


def test_find_fault_reads_code_and_text_and_ignores_other_bodies() -> None:
    assert find_fault(fault_xml("Locked", code="a:Lock")) == "a:Lock: Locked"
    assert find_fault(b"<html>oops</html>") is None
    assert find_fault(b"not xml") is None


def test_refuse_dtd_refuses_a_doctype_in_the_prolog_only() -> None:
    with pytest.raises(ResponseProblem, match="DTD"):
        refuse_dtd(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>')
    refuse_dtd(b"<x><![CDATA[<!DOCTYPE is just text here]]></x>")


def test_a_bad_integer_names_the_field(client: Any) -> None:
    cle = zeep.Client(  # type: ignore[no-untyped-call]
        str(WSDL / "cust_ledger_entry.wsdl")
    )
    op = cle.service._binding.get("ReadMultiple")
    plan = ResponsePlan.build("ReadMultiple", op.output.body, "ReadMultiple_Result.CustLedgerEntry")
    ns = "urn:microsoft-dynamics-schemas/page/custledgerentry"
    doc = (
        f'<s:Envelope xmlns:s="{ENV}"><s:Body><ReadMultiple_Result xmlns="{ns}">'
        "<ReadMultiple_Result>"
        "<CustLedgerEntry><Entry_No>seven</Entry_No></CustLedgerEntry>"
        "</ReadMultiple_Result></ReadMultiple_Result></s:Body></s:Envelope>"
    ).encode()
    with pytest.raises(
        ResponseProblem, match=r"CustLedgerEntry.Entry_No: 'seven' is not a valid integer"
    ):
        read_with_lxml(doc, plan)
