"""Tryton's JSON dialect: decode its tagged values and encode domains, orders and datetimes.

Tryton (``trytond.protocols.jsonrpc``) sends Decimal, date, datetime, time, timedelta and bytes
as objects tagged with ``"__class__"``; its REST API takes a filter domain (``d=``) and an order
(``o=``) as URL-safe base64 of JSON using the same tags. ``decode_record`` turns a record into
plain JSON values that mappings read like any other source (Decimal as a string, dates and
datetimes as ISO 8601, Tryton's naive datetimes being UTC).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import orjson

from concord.utc import as_utc

_DECIMAL = re.compile(rb'\{"__class__": ?"Decimal", ?"decimal": ?("[^"\\]*")\}')
_DATE = re.compile(rb'\{"__class__": ?"date", ?"year": ?(\d+), ?"month": ?(\d+), ?"day": ?(\d+)\}')
_DATETIME = re.compile(
    rb'\{"__class__": ?"datetime", ?"year": ?(\d+), ?"month": ?(\d+), ?"day": ?(\d+), ?'
    rb'"hour": ?(\d+), ?"minute": ?(\d+), ?"second": ?(\d+), ?"microsecond": ?(\d+)\}'
)
TAG = b'"__class__"'


def _decode_tag(value: dict[str, Any]) -> Any:
    cls = value["__class__"]
    if cls == "Decimal":
        return str(value["decimal"])
    if cls == "date":
        return f"{value['year']:04d}-{value['month']:02d}-{value['day']:02d}"
    if cls == "datetime":
        return datetime(
            value["year"],
            value["month"],
            value["day"],
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
        ).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if cls == "time":
        return (
            f"{value.get('hour', 0):02d}:{value.get('minute', 0):02d}:{value.get('second', 0):02d}"
        )
    if cls == "timedelta":
        return value.get("seconds")
    if cls == "bytes":
        return value.get("base64")
    return value


def _date_bytes(m: re.Match[bytes]) -> bytes:
    year, month, day = (int(g) for g in m.groups())
    return b'"%04d-%02d-%02d"' % (year, month, day)


def _datetime_bytes(m: re.Match[bytes]) -> bytes:
    year, month, day, hour, minute, second, micro = (int(g) for g in m.groups())
    return b'"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"' % (
        year,
        month,
        day,
        hour,
        minute,
        second,
        micro,
    )


def rewrite_tags(body: bytes) -> bytes:
    """Fast path on the raw response: Tryton's tagged values become plain JSON strings.

    Decimal, date and datetime tags in the layout Tryton writes them are rewritten before
    parsing (a C regex instead of a Python walk); anything else stays for ``decode_record``.
    """
    if TAG not in body:
        return body
    body = _DECIMAL.sub(rb"\1", body)
    body = _DATETIME.sub(_datetime_bytes, body)
    return _DATE.sub(_date_bytes, body)


def decode_value(value: Any) -> Any:
    """One JSON value with Tryton's tags replaced by plain strings and numbers."""
    if isinstance(value, dict):
        if "__class__" in value:
            return _decode_tag(value)
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def decode_record(record: Any) -> Any:
    """A record from Tryton's REST API in plain JSON (see the module docstring)."""
    return decode_value(record)


def encode_datetime(value: datetime) -> dict[str, Any]:
    """A UTC datetime as Tryton's tagged JSON (Tryton stores naive UTC timestamps)."""
    value = as_utc(value)
    return {
        "__class__": "datetime",
        "year": value.year,
        "month": value.month,
        "day": value.day,
        "hour": value.hour,
        "minute": value.minute,
        "second": value.second,
        "microsecond": value.microsecond,
    }


def encode_param(value: Any) -> str:
    """A domain or order as Tryton's REST API reads ``d=``/``o=``: URL-safe base64, padded."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode("ascii")


def decode_param(text: str) -> Any:
    """Inverse of ``encode_param`` (for tests and for reading checkpoints)."""
    return orjson.loads(base64.urlsafe_b64decode(text.encode("ascii")))
