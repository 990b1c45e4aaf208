"""Run-time conversions and string functions that compiled mappings call.

Each converter takes a raw value and returns the converted one or raises ``ConversionError``
with a short reason ("cannot parse '31/02/2025' as datetime"); the compiled mapping adds the
file and output field and raises ``RecordRejected``. The generated code inlines the common
fast paths (a string to ``Decimal``, an ISO timestamp to ``datetime``) and falls back here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from concord.mapping.codes import COUNTRY_CODES, CURRENCY_CODES, FREE_MAIL_DOMAINS
from concord.utc import as_utc

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
EPOCH_FORMATS = ("epoch", "epoch_ms")


class ConversionError(ValueError):
    """A value cannot be converted; the message is the reason, without file or field."""


def show(value: Any) -> str:
    """A short printable form of a value for reject reasons."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(value: Any, kind: str) -> ConversionError:
    """The conversion error for ``value`` that is not a ``kind``."""
    return ConversionError(f"cannot parse {show(value)} as {kind}")


def zone(name: str | None) -> tzinfo:
    """The time zone for naive timestamps: ``UTC`` unless a zone name is given."""
    if name is None or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConversionError(f"unknown time zone '{name}'") from None


def _tryton(value: dict[str, Any]) -> Any:
    """Tryton's JSON encoding of Decimal, date and datetime values ({"__class__": ...})."""
    cls = value.get("__class__")
    if cls == "Decimal":
        return value.get("decimal")
    if cls == "date":
        return date(value["year"], value["month"], value["day"])
    if cls == "datetime":
        return datetime(
            value["year"],
            value["month"],
            value["day"],
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
        )
    return value


def to_decimal(value: Any) -> Decimal:
    """An exact ``Decimal`` from a number or numeric text (no floats in between)."""
    if isinstance(value, dict):
        value = _tryton(value)
    if isinstance(value, bool):
        raise fail(value, "decimal")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise fail(value, "decimal") from None
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise fail(value, "decimal")
    if not result.is_finite():
        raise fail(value, "decimal")
    return result


def to_int(value: Any) -> int:
    """An ``int`` from an integral number or numeric text (booleans refused)."""
    if isinstance(value, bool):
        raise fail(value, "int")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    try:
        number = to_decimal(value)
    except ConversionError:
        raise fail(value, "int") from None
    if number != number.to_integral_value():
        raise fail(value, "int")
    return int(number)


def to_float(value: Any) -> float:
    """A ``float`` from a number or numeric text."""
    if isinstance(value, float):
        return value
    try:
        return float(to_decimal(value))
    except ConversionError:
        raise fail(value, "float") from None


def to_bool(value: Any) -> bool:
    """A ``bool`` from a boolean, 0/1, or true/false, yes/no text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise fail(value, "bool")


def to_str(value: Any) -> str:
    """Text of a value; numbers without exponent noise."""
    if isinstance(value, str):
        return value if value.__class__ is str else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise ConversionError(f"expected text, got {show(value)}")


def to_currency(value: Any) -> str:
    """An ISO 4217 currency code, upper-cased and checked."""
    if isinstance(value, str):
        code = value.strip().upper()
        if code in CURRENCY_CODES:
            return code
    raise ConversionError(f"{show(value)} is not an ISO 4217 currency code")


def to_country(value: Any) -> str:
    """An ISO 3166 alpha-2 country code, upper-cased and checked."""
    if isinstance(value, str):
        code = value.strip().upper()
        if code in COUNTRY_CODES:
            return code
    raise ConversionError(f"{show(value)} is not an ISO 3166 alpha-2 country code")


def datetime_parser(fmt: str | None, tz: tzinfo) -> Callable[[Any], datetime]:
    """A converter to an aware UTC ``datetime``: ISO 8601 by default, or a strptime format.

    ``format: epoch`` / ``epoch_ms`` read Unix seconds / milliseconds. Naive values are taken
    to be in ``tz``; date-only values become midnight in ``tz``.
    """

    def finish(parsed: datetime) -> datetime:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return as_utc(parsed)

    def parse(value: Any) -> datetime:
        if isinstance(value, dict):
            value = _tryton(value)
        if isinstance(value, datetime):
            return finish(value)
        if isinstance(value, date):
            return finish(datetime(value.year, value.month, value.day))
        if fmt in EPOCH_FORMATS:
            if isinstance(value, bool):
                raise fail(value, "datetime")
            try:
                seconds = to_decimal(value)
            except ConversionError:
                raise fail(value, "datetime") from None
            if fmt == "epoch_ms":
                seconds = seconds / 1000
            try:
                return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(seconds))
            except OverflowError:
                raise fail(value, "datetime") from None
        if not isinstance(value, str):
            raise fail(value, "datetime")
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text) if fmt is None else datetime.strptime(text, fmt)
        except ValueError:
            raise fail(value, "datetime") from None
        return finish(parsed)

    return parse


def date_parser(fmt: str | None, tz: tzinfo | None) -> Callable[[Any], date]:
    """A converter to a ``date``: ISO ``YYYY-MM-DD`` by default, or a strptime format.

    A ``datetime`` (or a timestamp string) gives its date, in ``tz`` when one is set.
    """

    def parse(value: Any) -> date:
        if isinstance(value, dict):
            value = _tryton(value)
        if isinstance(value, datetime):
            moment: datetime = value
            if tz is not None and moment.tzinfo is not None:
                moment = moment.astimezone(tz)
            return moment.date()
        if isinstance(value, date):
            return date(value.year, value.month, value.day)
        if not isinstance(value, str):
            raise fail(value, "date")
        text = value.strip()
        try:
            if fmt is not None:
                return datetime.strptime(text, fmt).date()
            if len(text) == 10:
                return date.fromisoformat(text)
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise fail(value, "date") from None
        if tz is not None and stamp.tzinfo is not None:
            stamp = stamp.astimezone(tz)
        return stamp.date()

    return parse


def rounder(places: int) -> Callable[[Any], Any]:
    """Round a Decimal half-up (money style) or a float to ``places`` decimals."""
    exponent = Decimal(1).scaleb(-places)

    def apply(value: Any) -> Any:
        if isinstance(value, Decimal):
            return value.quantize(exponent, rounding=ROUND_HALF_UP)
        if isinstance(value, float):
            return round(value, places)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return to_decimal(value).quantize(exponent, rounding=ROUND_HALF_UP)
        raise ConversionError(f"cannot round {show(value)}")

    return apply


def negate(value: Any) -> Any:
    """The number with its sign flipped (``negate_if``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ConversionError(f"cannot negate {show(value)}: not a number")
    return -value


def stringify(value: Any) -> str:
    """The text a string-only target (HubSpot properties) gets for a value; None gives ''."""
    if value.__class__ is str:  # the common case first: most properties are text already
        return value
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(stringify(v) for v in value if v is not None)
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        raise ConversionError(f"cannot write an object {show(value)} as text")
    return to_str(value)


def company_domain(value: Any) -> Any:
    """A company's web domain from a domain or an e-mail address, or None for free mail.

    Lower-cased, without ``www.``; a shared free-mail provider (``FREE_MAIL_DOMAINS``) names no
    company, so its domain gives None.
    """
    if not isinstance(value, str):
        return value
    domain = value.strip().rsplit("@", 1)[-1].strip().lower().rstrip(".")
    domain = domain.removeprefix("www.")
    if not domain or domain in FREE_MAIL_DOMAINS:
        return None
    return domain


def converter(kind: str, fmt: str | None = None, tz: str | None = None) -> Callable[[Any], Any]:
    """The converter for a ``type:`` name (the loader has checked the name, format and zone)."""
    if kind == "datetime":
        return datetime_parser(fmt, zone(tz))
    if kind == "date":
        return date_parser(fmt, zone(tz) if tz else None)
    simple: dict[str, Callable[[Any], Any]] = {
        "decimal": to_decimal,
        "int": to_int,
        "float": to_float,
        "bool": to_bool,
        "str": to_str,
        "currency": to_currency,
        "country": to_country,
    }
    return simple[kind]
