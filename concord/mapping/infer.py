"""Draft a mapping file from sample records: a starting point for an engineer, not a final word.

``infer_mapping(sample, entity)`` matches each canonical field to a source path by name (exact,
known synonyms such as ``order_date`` for ``ordered_at``, then fuzzy; names compared without
case or separators, so ``Post_Code``, ``postalCode`` and ``zip`` all find ``postcode``), builds
``each`` blocks for lists of objects (order lines) and ``object`` blocks for addresses (from a
nested object, or from flat fields such as ``Address``, ``City``, ``Post_Code``), writes a
``map`` for enum fields from the values seen (guessing the nearest enum value and marking the
guess), and guesses a date ``format`` when sample dates are not ISO 8601. The record id is the
first field named like one (``id``, ``No``, ``number``, ...). Required fields without a match are
left as comments, so such a draft fails to load until someone decides; unread source paths are
listed at the end.
"""

from __future__ import annotations

import difflib
import json
import re
import textwrap
from datetime import datetime
from typing import Any

from concord.mapping.targets import Target, model_targets
from concord.model import ENTITY_MODELS

SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("id", "no", "number", "uuid", "code", "key"),
    "number": ("number", "name", "reference", "ref", "no", "document_number"),
    "name": ("name", "company", "company_name", "display_name", "full_name"),
    "legal_name": ("legal_name", "registered_name", "company_name"),
    "tax_id": (
        "tax_id",
        "vat_id",
        "vat",
        "vat_number",
        "tax_number",
        "vat_registration_no",
        "tax_registration_number",
    ),
    "emails": ("email", "emails", "email_address", "mail", "e_mail"),
    "phones": ("phone", "phones", "telephone", "mobile", "phone_number", "phone_no"),
    "addresses": ("address", "billing_address", "addresses", "invoice_address"),
    "line": ("street", "line", "address1", "street_address", "address_line", "address_line1"),
    "city": ("city", "town", "locality"),
    "postcode": ("postcode", "zip", "zip_code", "postal_code", "post_code"),
    "country": ("country", "country_code", "country_region_code", "country_id"),
    "crossrefs": ("crm_ref", "crossrefs", "external_ref", "external_id"),
    "is_person": ("is_person", "type", "kind", "party_type"),
    "customer_id": ("customer_id", "partner_id", "party_id", "customer", "client_id"),
    "order_id": ("order_id", "sale_id", "origin", "sales_order_id"),
    "invoice_id": ("invoice_id", "invoice", "move_id"),
    "ordered_at": ("ordered_at", "order_date", "date_order", "sale_date", "date"),
    "issued_at": ("issued_at", "invoice_date", "date_invoice", "date"),
    "due_at": ("due_at", "due_date", "date_due", "maturity_date"),
    "paid_at": ("paid_at", "payment_date", "date"),
    "shipped_at": ("shipped_at", "ship_date", "shipping_date", "date_done"),
    "delivered_at": ("delivered_at", "delivery_date", "date_delivered"),
    "promised_at": ("promised_at", "promised_date", "scheduled_date", "planned_date"),
    "status": ("status", "state"),
    "currency": ("currency", "currency_code", "currency_id"),
    "net_total": ("net_total", "amount_untaxed", "subtotal", "net_amount", "untaxed_amount"),
    "tax_total": ("tax_total", "amount_tax", "tax", "tax_amount", "vat_amount"),
    "gross_total": ("gross_total", "amount_total", "total", "total_amount"),
    "total": ("total", "amount_total", "total_amount", "gross_total"),
    "open_amount": ("open_amount", "amount_due", "amount_residual", "residual", "balance"),
    "amount": ("amount", "amount_total", "value"),
    "lines": ("lines", "order_lines", "items", "line_items"),
    "sku": ("sku", "product_code", "default_code", "item_code", "product"),
    "description": ("description", "name", "product_name", "label"),
    "quantity": ("quantity", "qty", "product_uom_qty", "amount"),
    "unit_price": ("unit_price", "price", "price_unit", "unit_amount"),
    "net_amount": ("net_amount", "price_subtotal", "subtotal", "line_total"),
    "tracking": ("tracking", "tracking_no", "tracking_number", "tracking_ref"),
    "carrier": ("carrier", "carrier_name", "shipper"),
    "method": ("method", "payment_method", "journal"),
    "reference": ("reference", "number", "name", "ref"),
    "created_at": ("created_at", "create_date", "created"),
    "updated_at": (
        "updated_at",
        "write_date",
        "last_modified_at",
        "modified_at",
        "updated",
        "last_date_modified",
        "last_modified_date_time",
    ),
}
ENUM_ALIASES: dict[str, str] = {
    "done": "closed",
    "cancel": "cancelled",
    "canceled": "cancelled",
    "complete": "completed",
    "succeeded": "completed",
    "success": "completed",
    "sale": "confirmed",
    "sent": "open",
    "quotation": "draft",
    "processing": "pending",
    "waiting": "pending",
    "assigned": "pending",
    "in_transit": "shipped",
    "open": "posted",
    "validated": "posted",
    "error": "failed",
}
DATE_FORMATS = (
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y%m%d",
    "%Y/%m/%d",
)
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]$*-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


def _plain(name: str) -> str:
    """A field name without case or separators: ``Post_Code``, ``postCode`` -> ``postcode``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _text(value: Any) -> str:
    """A YAML scalar for ``value``: bare when safe, JSON-quoted otherwise."""
    if isinstance(value, str) and _BARE.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, default=str)


class _Samples:
    """Values seen at each dotted path of the sample records (lists of objects flattened)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.values: dict[str, list[Any]] = {}
        for record in records:
            self._walk(record, "")

    def _walk(self, value: dict[str, Any], prefix: str) -> None:
        for key, item in value.items():
            path = prefix + str(key)
            self.values.setdefault(path, []).append(item)
            if isinstance(item, dict):
                self._walk(item, path + ".")
            elif isinstance(item, list):
                for element in item:
                    if isinstance(element, dict):
                        self._walk(element, path + ".")

    def children(self, prefix: str) -> list[str]:
        """Direct child names under ``prefix`` ("" for the top level)."""
        names: list[str] = []
        for path in self.values:
            if path.startswith(prefix) and "." not in path[len(prefix) :]:
                names.append(path[len(prefix) :])
        return names

    def seen(self, path: str) -> list[Any]:
        return [v for v in self.values.get(path, []) if v is not None and v != ""]


class _Drafter:
    def __init__(self, samples: _Samples) -> None:
        self.samples = samples
        self.used: set[str] = set()
        self.lines: list[str] = []

    def match(self, field: str, prefix: str, want: str) -> str | None:
        """The best source name under ``prefix`` for ``field`` whose values fit ``want``."""
        names = [n for n in self.samples.children(prefix) if prefix + n not in self.used]
        candidates = [n for n in names if self.fits(prefix + n, want)]
        for synonym in (field, *SYNONYMS.get(field, ())):
            for name in candidates:
                if _plain(name) == _plain(synonym):
                    return name
        plain = {_plain(n): n for n in candidates}
        close = difflib.get_close_matches(_plain(field), list(plain), n=1, cutoff=0.75)
        return plain[close[0]] if close else None

    def fits(self, path: str, want: str) -> bool:
        values = self.samples.seen(path)
        if want == "objects":
            return (
                bool(values)
                and all(isinstance(v, list) for v in values)
                and any(isinstance(i, dict) for v in values for i in v)
            )
        if want == "object":
            return bool(values) and all(isinstance(v, dict) for v in values)
        return not any(
            isinstance(v, dict) or (isinstance(v, list) and any(isinstance(i, dict) for i in v))
            for v in values
        )

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("  " * indent + text)

    def fields(self, targets: dict[str, Target], prefix: str, indent: int) -> None:
        for name, target in targets.items():
            if name == "ref":
                continue
            self.field(name, target, prefix, indent)

    def field(self, name: str, target: Target, prefix: str, indent: int) -> None:
        item = target.item if target.kind == "list" else None
        if item is not None and item.kind == "object":
            source = self.match(name, prefix, "objects")
            if source is not None:
                self.used.add(prefix + source)
                self.emit(indent, f"{name}:")
                self.emit(indent + 1, f"each: {_text(source)}")
                self.emit(indent + 1, "fields:")
                self.fields(item.fields, prefix + source + ".", indent + 2)
                return
            source = self.match(name, prefix, "object")
            if source is not None:
                self.used.add(prefix + source)
                self.emit(indent, f"{name}:")
                self.emit(indent + 1, "as: list")
                self.emit(indent + 1, "object:")
                for sub, sub_target in item.fields.items():
                    self.object_field(
                        sub, sub_target, prefix + source + ".", indent + 2, source + "."
                    )
                return
            self.flat_object(name, item, prefix, indent)
            return
        elif target.kind == "object":
            return
        source = self.match(name, prefix, "value")
        if source is None:
            if target.required:
                self.emit(indent, f"# {name}: ???    # required: no source field found")
            return
        self.used.add(prefix + source)
        if target.kind == "enum":
            self.emit(indent, f"{name}:")
            self.emit(indent + 1, f"path: {_text(source)}")
            self.emit(indent + 1, "map:")
            for value, (mapped, note) in _enum_map(
                self.samples.seen(prefix + source), target.enum_values
            ).items():
                comment = f"    # {note}" if note else ""
                self.emit(indent + 2, f"{_text(value)}: {_text(mapped)}{comment}")
            return
        self.emit(indent, f"{name}: {self.expression(source, target, prefix + source)}")

    def flat_object(self, name: str, item: Target, prefix: str, indent: int) -> None:
        """A list of one object built from flat fields (``Address``, ``City``, ``Post_Code``).

        Fields already mapped elsewhere (a customer's ``country``) may be read again here.
        """
        found: list[tuple[str, Target, str]] = []
        used = self.used
        for sub, sub_target in item.fields.items():
            self.used = set()
            source = self.match(sub, prefix, "value")
            self.used = used
            if source is None and sub == "line":
                self.used = set()
                source = self.match("address", prefix, "value")
                self.used = used
            if source is not None and sub_target.kind not in ("object", "list"):
                found.append((sub, sub_target, source))
        if not any(sub in ("line", "city", "postcode") for sub, _, _ in found):
            return
        self.emit(indent, f"{name}:")
        self.emit(indent + 1, "as: list")
        self.emit(indent + 1, "object:")
        for sub, sub_target, source in found:
            self.used.add(prefix + source)
            self.emit(indent + 2, f"{sub}: {self.expression(source, sub_target, prefix + source)}")

    def object_field(
        self, name: str, target: Target, prefix: str, indent: int, relative: str
    ) -> None:
        source = self.match(name, prefix, "value")
        if source is None:
            return
        self.used.add(prefix + source)
        self.emit(indent, f"{name}: {self.expression(relative + source, target, prefix + source)}")

    def expression(self, source: str, target: Target, path: str) -> str:
        values = self.samples.seen(path)
        options: list[str] = [f"path: {_text(source)}"]
        kind = target.item.kind if target.kind == "list" and target.item else target.kind
        if target.kind == "list":
            options.append("as: list")
        if kind == "bool" and values and not all(isinstance(v, bool) for v in values):
            seen = sorted({str(v) for v in values})
            guesses = {
                v: v.lower() in ("person", "individual", "private", "true", "y", "yes")
                for v in seen
            }
            options.append(
                "map: {"
                + ", ".join(f"{_text(k)}: {str(g).lower()}" for k, g in guesses.items())
                + "}"
            )
        elif kind == "datetime":
            fmt = _date_format(values)
            if fmt:
                options.append(f"type: datetime, format: {_text(fmt)}")
        if len(options) == 1:
            return _text(source)
        return "{" + ", ".join(options) + "}"


def _enum_map(values: list[Any], allowed: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Source value -> (enum value, note) for the values seen; guesses carry a note."""
    out: dict[str, tuple[str, str]] = {}
    for value in sorted({str(v) for v in values}):
        if value in allowed:
            out[value] = (value, "")
            continue
        alias = ENUM_ALIASES.get(value.lower())
        if alias in allowed:
            out[value] = (alias, "guessed")
            continue
        close = difflib.get_close_matches(value.lower(), allowed, n=1, cutoff=0.6)
        out[value] = (close[0], "guessed") if close else (allowed[0], "no match: review")
    return out


def _date_format(values: list[Any]) -> str | None:
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return "epoch" if values and all(isinstance(v, int | float) for v in values) else None
    try:
        for text in texts:
            datetime.fromisoformat(text)
        return None
    except ValueError:
        pass
    for fmt in DATE_FORMATS:
        try:
            for text in texts:
                datetime.strptime(text, fmt)
        except ValueError:
            continue
        return fmt
    return None


def infer_mapping(
    sample: dict[str, Any] | list[dict[str, Any]], entity: str, source: str = "my_erp"
) -> str:
    """A draft inbound mapping (YAML text) for ``entity`` from one or more sample records."""
    if entity not in ENTITY_MODELS:
        raise ValueError(
            f"unknown entity '{entity}'; expected one of: {', '.join(sorted(ENTITY_MODELS))}"
        )
    records = [sample] if isinstance(sample, dict) else list(sample)
    samples = _Samples(records)
    drafter = _Drafter(samples)
    id_source = drafter.match("id", "", "value")
    guessed = id_source is None
    if id_source is None:  # nothing named like an id: the first plain field, to be reviewed
        id_source = next((n for n in samples.children("") if drafter.fits(n, "value")), "id")
    drafter.used.add(id_source)
    drafter.emit(0, f"# Draft inferred from {len(records)} sample record(s): review every line.")
    drafter.emit(0, "direction: inbound")
    drafter.emit(0, f"source: {_text(source)}")
    drafter.emit(0, f"entity: {entity}")
    drafter.emit(
        0,
        f"id: {_text(id_source)}"
        + ("    # guessed: no field is named like an id" if guessed else ""),
    )
    drafter.emit(0, "")
    drafter.emit(0, "fields:")
    drafter.fields(model_targets(ENTITY_MODELS[entity]), "", 1)
    unread = sorted(
        p for p in samples.values if not any(p == u or p.startswith(u + ".") for u in drafter.used)
    )
    unread = [p for p in unread if not any(p.startswith(q + ".") for q in unread)]
    if unread:
        drafter.emit(0, "")
        drafter.emit(0, "# source paths not mapped:")
        for line in textwrap.wrap(", ".join(unread), width=96):
            drafter.emit(0, f"#   {line}")
    return "\n".join(drafter.lines) + "\n"
