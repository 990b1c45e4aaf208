"""Tryton's tagged JSON values decoded to plain JSON; domains encoded as its REST API reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from connectors.erp import tryton


def test_decimal_date_and_datetime_tags_become_strings() -> None:
    record = {
        "id": 1,
        "total_amount": {"__class__": "Decimal", "decimal": "2166.00"},
        "sale_date": {"__class__": "date", "year": 2026, "month": 10, "day": 4},
        "last_modified_at": {
            "__class__": "datetime",
            "year": 2026,
            "month": 11,
            "day": 23,
            "hour": 11,
            "minute": 40,
            "second": 54,
            "microsecond": 794781,
        },
        "lines": [{"quantity": 2.0, "unit_price": {"__class__": "Decimal", "decimal": "12.5000"}}],
        "party": {"id": 2, "name": "Acme"},
    }
    assert tryton.decode_record(record) == {
        "id": 1,
        "total_amount": "2166.00",
        "sale_date": "2026-10-04",
        "last_modified_at": "2026-11-23T11:40:54.794781Z",
        "lines": [{"quantity": 2.0, "unit_price": "12.5000"}],
        "party": {"id": 2, "name": "Acme"},
    }


def test_time_timedelta_and_bytes_tags() -> None:
    assert tryton.decode_value({"__class__": "time", "hour": 9, "minute": 5, "second": 0}) == (
        "09:05:00"
    )
    assert tryton.decode_value({"__class__": "timedelta", "seconds": 90.0}) == 90.0
    assert tryton.decode_value({"__class__": "bytes", "base64": "YWJj\n"}) == "YWJj\n"


def test_an_unknown_tag_is_left_as_is() -> None:
    value = {"__class__": "Money", "amount": 1}
    assert tryton.decode_value(value) == value


def test_datetimes_are_sent_in_utc() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert tryton.encode_datetime(local)["hour"] == 10
    assert tryton.encode_datetime(datetime(2026, 1, 1, tzinfo=UTC))["__class__"] == "datetime"


def test_param_encoding_round_trips() -> None:
    domain = [["name", "ilike", "%ä%"], ["id", ">", 3]]
    assert tryton.decode_param(tryton.encode_param(domain)) == domain


def _tryton_body(records: list[dict[str, object]], compact: bool = False) -> bytes:
    import json

    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(records, separators=separators).encode()


SAMPLE = [
    {
        "id": 7,
        "amount": {"__class__": "Decimal", "decimal": "-12.50"},
        "date": {"__class__": "date", "year": 2026, "month": 2, "day": 3},
        "at": {
            "__class__": "datetime",
            "year": 2026,
            "month": 11,
            "day": 23,
            "hour": 1,
            "minute": 2,
            "second": 3,
            "microsecond": 45,
        },
        "note": 'a "quoted" {"__class__": "Decimal", "decimal": "1"} text',
        "span": {"__class__": "timedelta", "seconds": 5.0},
    }
]


def test_the_raw_rewrite_gives_the_same_records_as_the_python_decoder() -> None:
    import orjson

    for compact in (False, True):
        body = _tryton_body(SAMPLE, compact)
        rewritten = orjson.loads(tryton.rewrite_tags(body))
        assert tryton.decode_record(rewritten) == tryton.decode_record(orjson.loads(body))


def test_the_rewrite_leaves_strings_that_look_like_tags_alone() -> None:
    import orjson

    rewritten = orjson.loads(tryton.rewrite_tags(_tryton_body(SAMPLE)))
    assert rewritten[0]["note"] == SAMPLE[0]["note"]
    assert rewritten[0]["amount"] == "-12.50"
    assert rewritten[0]["span"] == {"__class__": "timedelta", "seconds": 5.0}  # left for decode
