"""Turn a SOAP response body into plain record dicts, safely, by zeep or by a fast lxml path.

Both readers give the same dicts: element names as keys, every field the WSDL declares present
(None when absent, [] for absent repeated elements), xsd:int as int, xsd:boolean as bool, and
decimals, dates and times as their text ("12.50", "2026-01-31"), so staging hashes do not depend
on the reader. ``zeep`` deserialises through the WSDL's schema (strict, the reference);
``lxml`` walks the body with ``iterparse`` against a `RecordShape` compiled once from the same
schema, checking values and element names as it goes (several times faster, see
bench/results/soap.md). Both refuse DTDs and entities before anything is parsed (no billion
laughs, no XXE), never touch the network, and report problems as `ResponseProblem` with a kind
(refused, malformed, mismatch, fault) that the source turns into a `SourceError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from io import BytesIO
from typing import Any, Literal

from lxml import etree  # type: ignore[import-untyped]

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_ENVELOPES = (SOAP11_ENV, SOAP12_ENV)
_ROOT_START = re.compile(rb"<[A-Za-z_]")
ProblemKind = Literal["refused", "malformed", "mismatch", "fault"]


class ResponseProblem(Exception):
    """The response cannot be turned into records; ``kind`` says why, ``text`` what exactly."""

    def __init__(self, kind: ProblemKind, text: str) -> None:
        super().__init__(text)
        self.kind, self.text = kind, text


def safe_parser() -> etree.XMLParser:
    """An lxml parser that loads no DTD, expands no entity and never reaches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def refuse_dtd(body: bytes) -> None:
    """Refuse a document declaring a DTD (the carrier of billion-laughs and XXE payloads)."""
    match = _ROOT_START.search(body)
    prolog = body[: match.start()] if match else body
    if b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
        raise ResponseProblem(
            "refused",
            "response declares a DTD or entities; refused (DTDs, entities and "
            "external references are forbidden)",
        )


def parse_document(body: bytes) -> Any:
    """Parse a whole (small) document safely: for faults and error bodies."""
    refuse_dtd(body)
    try:
        root = etree.fromstring(body, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise ResponseProblem("malformed", f"response is not well-formed XML ({exc})") from None
    if root.getroottree().docinfo.doctype:
        raise ResponseProblem("refused", "response declares a DTD; refused")
    return root


def operation_result(root: Any, plan: ResponsePlan) -> Any:
    """The Body's child, once it is neither a SOAP Fault nor another element than the WSDL's."""
    child = body_child(root)
    fault = fault_text(child)
    if fault is not None:
        raise ResponseProblem("fault", fault)
    if child.tag != plan.wrapper_tag:
        raise ResponseProblem(
            "mismatch",
            f"response does not match the WSDL: expected {etree.QName(plan.wrapper_tag).localname}"
            f", got {etree.QName(child).localname}",
        )
    return child


def body_child(root: Any) -> Any:
    """The first element inside the SOAP Body, or a mismatch problem when there is none."""
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace not in _ENVELOPES:
        raise ResponseProblem("mismatch", f"response is not a SOAP envelope (root {root.tag})")
    ns = etree.QName(root).namespace
    child = root.find(f"{{{ns}}}Body/*")
    if child is None:
        raise ResponseProblem("mismatch", "the SOAP Body of the response is empty")
    return child


def fault_text(element: Any) -> str | None:
    """'code: text' of a SOAP 1.1 or 1.2 Fault element, or None when it is not a Fault."""
    if etree.QName(element).localname != "Fault":
        return None
    code = element.findtext("faultcode") or element.findtext(f".//{{{SOAP12_ENV}}}Value") or ""
    text = element.findtext("faultstring") or element.findtext(f".//{{{SOAP12_ENV}}}Text") or ""
    return f"{code.strip()}: {text.strip()[:500]}".strip(": ") or "SOAP Fault without text"


def find_fault(body: bytes) -> str | None:
    """The fault text when ``body`` is a SOAP Fault envelope, else None (never raises)."""
    try:
        return fault_text(body_child(parse_document(body)))
    except ResponseProblem:
        return None


# -- the schema-driven fast path ----------------------------------------------------------------


def _check(parse: Callable[[str], Any], kind: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        text = text.strip()
        try:
            parse(text)
        except (ValueError, InvalidOperation):
            raise ValueError(f"'{text[:40]}' is not a valid {kind}") from None
        return text

    return convert


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"'{text[:40]}' is not a valid integer") from None


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _to_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip()]
    except KeyError:
        raise ValueError(f"'{text[:40]}' is not a valid boolean") from None


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"'{text[:40]}' is not a valid number") from None


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_CONVERTERS: list[tuple[str, Callable[[str], Any]]] = [
    # most specific first: zeep's Integer derives from Decimal, Int from Long from Integer
    ("Boolean", _to_bool),
    ("Integer", _to_int),
    ("Decimal", _check(Decimal, "decimal")),
    ("Float", _to_float),
    ("Double", _to_float),
    ("DateTime", _check(_parse_datetime, "date-time")),
    ("Date", _check(date.fromisoformat, "date")),
    ("Time", _check(time.fromisoformat, "time")),
]


def _converter(xsd_type: Any) -> Callable[[str], Any] | None:
    names = {cls.__name__ for cls in type(xsd_type).__mro__}
    for name, convert in _CONVERTERS:
        if name in names:
            return convert
    return None  # strings, enumerations and anything else stay text


@dataclass
class FieldShape:
    """One field of a record shape: its element name, whether it repeats, its own shape."""

    key: str
    many: bool
    convert: Callable[[str], Any] | None = None
    shape: RecordShape | None = None


@dataclass
class RecordShape:
    """What one complex element may contain, compiled from the WSDL's schema."""

    name: str
    fields: dict[str, FieldShape] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)
    many_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_xsd(cls, name: str, xsd_type: Any, depth: int = 0) -> RecordShape:
        """The record shape of an XSD type (nested types to a depth of 8)."""
        shape = cls(name)
        if depth > 8:
            return shape
        for key, element in getattr(xsd_type, "elements", []):
            many = element.max_occurs == "unbounded" or int(element.max_occurs) > 1
            child_type = element.type
            nested = (
                cls.from_xsd(key, child_type, depth + 1)
                if hasattr(child_type, "elements_nested")
                else None
            )
            shape.fields[str(element.qname)] = FieldShape(
                key, many, None if nested else _converter(child_type), nested
            )
            shape.template[key] = None
            if many:
                shape.many_keys.append(key)
        return shape

    def read(self, element: Any) -> dict[str, Any]:
        """One element to a dict; ValueError naming the field when it does not fit the shape."""
        record = dict(self.template)
        fields = self.fields
        for child in element:
            spec = fields.get(child.tag)
            if spec is None:
                if not isinstance(child.tag, str):
                    continue  # comments and processing instructions
                raise ValueError(
                    f"unexpected element {etree.QName(child).localname} in {self.name}"
                )
            if spec.shape is not None:
                value: Any = spec.shape.read(child)
            else:
                text = child.text
                if text is None:
                    value = None
                elif spec.convert is None:
                    value = text
                else:
                    try:
                        value = spec.convert(text)
                    except ValueError as exc:
                        raise ValueError(f"{self.name}.{spec.key}: {exc}") from None
            if spec.many:
                current = record[spec.key]
                if current is None:
                    record[spec.key] = [value]
                else:
                    current.append(value)
            else:
                record[spec.key] = value
        for key in self.many_keys:
            if record[key] is None:
                record[key] = []
        return record


@dataclass(frozen=True)
class ResponsePlan:
    """Where records sit in one operation's response: wrapper tag, path tags, record shape."""

    operation: str
    wrapper_tag: str
    path: tuple[str, ...]  # qualified tags below the wrapper, the last one is the record
    keys: tuple[str, ...]  # the same steps as dict keys (for the zeep reader)
    shape: RecordShape
    wrapper_element: Any  # zeep's xsd Element for the wrapper

    @classmethod
    def build(cls, operation: str, wrapper_element: Any, records_path: str) -> ResponsePlan:
        """Resolve ``records_path`` (dotted names below the response wrapper) in the schema."""
        current = wrapper_element.type
        tags: list[str] = []
        keys: list[str] = []
        record_type: Any = None
        for step in records_path.split("."):
            match = next(
                (el for name, el in getattr(current, "elements", []) if name == step), None
            )
            if match is None:
                known = ", ".join(n for n, _ in getattr(current, "elements", []))
                raise LookupError(f"'{step}' is not an element there (known: {known or 'none'})")
            tags.append(str(match.qname))
            keys.append(step)
            current = record_type = match.type
        if record_type is None or not hasattr(record_type, "elements_nested"):
            raise LookupError(f"'{records_path}' does not lead to a complex element")
        shape = RecordShape.from_xsd(keys[-1], record_type)
        return cls(
            operation, str(wrapper_element.qname), tuple(tags), tuple(keys), shape, wrapper_element
        )


def read_with_lxml(body: bytes, plan: ResponsePlan) -> list[dict[str, Any]]:
    """Records of a 200 response via ``iterparse`` (safe settings); elements freed as read."""
    refuse_dtd(body)
    record_tag = plan.path[-1]
    parent_tag = plan.path[-2] if len(plan.path) > 1 else plan.wrapper_tag
    records: list[dict[str, Any]] = []
    context = etree.iterparse(
        BytesIO(body),
        events=("end",),
        tag=record_tag,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for _, element in context:
            parent = element.getparent()
            if parent is None or parent.tag != parent_tag:
                continue  # an element of the same name elsewhere: not a record
            try:
                records.append(plan.shape.read(element))
            except ValueError as exc:
                raise ResponseProblem(
                    "mismatch", f"response does not match the WSDL: {exc}"
                ) from None
            element.clear()
            while element.getprevious() is not None:
                del parent[0]
        root = context.root
    except etree.XMLSyntaxError as exc:
        raise ResponseProblem("malformed", f"response is not well-formed XML ({exc})") from None
    if root is None:
        raise ResponseProblem("malformed", "response is empty")
    if root.getroottree().docinfo.doctype:
        raise ResponseProblem("refused", "response declares a DTD; refused")
    operation_result(root, plan)  # raises on a fault or a foreign element
    return records


# -- the zeep reader ----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Zeep's Python values to the plain form both readers share (see the module docstring)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def zeep_xml_parser(client: Any) -> Callable[[bytes], Any]:
    """Zeep's own XML parsing with the client's settings (DTDs and entities forbidden)."""
    from zeep.loader import parse_xml

    def parse(body: bytes) -> Any:
        return parse_xml(body, client.transport, settings=client.settings)  # type: ignore[arg-type]

    return parse


def read_with_zeep(
    body: bytes, plan: ResponsePlan, schema: Any, parse_xml: Callable[[bytes], Any]
) -> list[dict[str, Any]]:
    """Records of a 200 response deserialised by zeep against the WSDL's schema (strict)."""
    from zeep.exceptions import DTDForbidden, EntitiesForbidden, XMLParseError, XMLSyntaxError
    from zeep.helpers import serialize_object

    refuse_dtd(body)  # before libxml2 sees the DTD at all, as on the fast path
    try:
        root = parse_xml(body)
    except (DTDForbidden, EntitiesForbidden) as exc:
        raise ResponseProblem(
            "refused", f"response declares a DTD or entities; refused ({type(exc).__name__})"
        ) from None
    except (etree.XMLSyntaxError, XMLSyntaxError, XMLParseError) as exc:
        raise ResponseProblem("malformed", f"response is not well-formed XML ({exc})") from None
    child = operation_result(root, plan)
    try:
        value = serialize_object(  # type: ignore[no-untyped-call]
            plan.wrapper_element.parse(child, schema), dict
        )
    except Exception as exc:  # zeep raises many types for values that do not fit the schema
        raise ResponseProblem(
            "mismatch", f"response does not match the WSDL: {type(exc).__name__}: {exc}"
        ) from None
    for key in plan.keys[:-1]:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        return []
    records = value.get(plan.keys[-1]) or []
    if not isinstance(records, list):
        records = [records]
    return [plain(r) for r in records]
