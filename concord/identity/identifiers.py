"""Identifiers of a customer (VAT, US EIN, GB company number, DUNS, LEI, national ids...).

Every identifier is normalised to ``(type, value, valid)``: the type canonicalised (Tryton's
``eu_vat`` and ``us_ein`` become ``vat`` and ``us_ein``), the value compacted (no spaces,
dashes or dots, upper-cased; a VAT number gets the record's country prefix) and ``valid`` as
python-stdnum judges it for that type (``None`` where no validator exists, such as DUNS).
Identity links on the same *valid* value and refuses a merge on two different values of one
type *valid or not*: a mistyped VAT number still says "this is another company".
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")

TYPE_ALIASES: dict[str, str] = {
    "vat": "vat",
    "eu_vat": "vat",
    "tax_id": "vat",
    "vat_id": "vat",
    "ein": "us_ein",
    "us_ein": "us_ein",
    "fein": "us_ein",
    "crn": "gb_crn",
    "gb_crn": "gb_crn",
    "company_number": "gb_crn",
    "duns": "duns",
    "lei": "lei",
    "siren": "fr_siren",
    "fr_siren": "fr_siren",
    "siret": "fr_siret",
    "fr_siret": "fr_siret",
}
"""Source spellings of identifier types mapped to concord's names; others are kept lower-cased
(``de_idnr``, ``us_ssn``: a ``cc_module`` name, validated by that stdnum module if it exists)."""

_VALIDATORS: dict[str, str] = {
    "us_ein": "stdnum.us.ein",
    "lei": "stdnum.lei",
    "fr_siren": "stdnum.fr.siren",
    "fr_siret": "stdnum.fr.siret",
}


@dataclass(frozen=True, slots=True, order=True)
class IdentifierKey:
    """One normalised identifier: canonical type, compact value, stdnum's verdict."""

    type: str
    value: str
    valid: bool | None

    def label(self) -> str:
        """``vat DE123456788 (valid)`` as explain prints it."""
        verdict = {True: "valid", False: "invalid", None: "not checkable"}[self.valid]
        return f"{self.type} {self.value} ({verdict})"


def canonical_type(raw: str) -> str:
    """Concord's name for an identifier type as a source spells it."""
    key = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return TYPE_ALIASES.get(key, key)


@functools.cache
def _module(name: str) -> ModuleType | None:
    dotted = _VALIDATORS.get(name)
    if dotted is None and "_" in name:
        cc, _, rest = name.partition("_")
        dotted = f"stdnum.{cc}.{rest}"
    if dotted is None:
        return None
    try:
        return importlib.import_module(dotted)
    except ImportError:
        return None


def _vat(compact: str, country: str | None) -> tuple[str, bool]:
    if country and not compact[:2].isalpha():
        compact = country.upper() + compact
    try:
        return str(eu_vat.validate(compact)), True
    except StdnumError:
        pass
    cc = compact[:2].lower()
    module: Any
    try:
        module = get_cc_module(cc, "vat")
    except (ImportError, ValueError):
        module = None
    if module is not None:
        for candidate in (compact[2:], compact):
            try:
                return cc.upper() + _NON_ALNUM.sub(
                    "", str(module.validate(candidate))
                ).upper(), True
            except StdnumError:
                continue
    return compact, False


@functools.lru_cache(maxsize=262_144)
def normalise_identifier(
    raw_type: str, value: str | None, country: str | None = None
) -> IdentifierKey | None:
    """The normalised identifier, or None when the value is empty after compaction."""
    if not value:
        return None
    compact = _NON_ALNUM.sub("", value).upper()
    if not compact:
        return None
    kind = canonical_type(raw_type)
    if kind == "vat":
        value_out, ok = _vat(compact, country)
        return IdentifierKey(kind, value_out, ok)
    if kind == "duns":
        return IdentifierKey(kind, compact, len(compact) == 9 and compact.isdigit())
    if kind == "gb_crn":
        ok = len(compact) == 8 and (compact.isdigit() or compact[:2].isalpha())
        return IdentifierKey(kind, compact, ok)
    module = _module(kind)
    if module is None:
        return IdentifierKey(kind, compact, None)
    try:
        checked = _NON_ALNUM.sub("", str(module.validate(compact))).upper()
    except StdnumError:
        return IdentifierKey(kind, compact, False)
    return IdentifierKey(kind, checked, True)


def record_identifiers(
    tax_id: str | None, identifiers: Iterable[Any], country: str | None
) -> tuple[IdentifierKey, ...]:
    """All identifiers of a canonical customer: ``tax_id`` (a VAT number) and ``identifiers``."""
    found: set[IdentifierKey] = set()
    vat = normalise_identifier("vat", tax_id, country)
    if vat is not None:
        found.add(vat)
    for item in identifiers:
        if not isinstance(item, dict):
            continue
        key = normalise_identifier(str(item.get("type") or ""), item.get("value"), country)
        if key is not None and key.type:
            found.add(key)
    return tuple(sorted(found))


def conflicts(a: Iterable[IdentifierKey], b: Iterable[IdentifierKey]) -> list[str]:
    """Types on which the two sets of identifiers disagree (each side has values, none shared)."""
    by_a: dict[str, set[str]] = {}
    by_b: dict[str, set[str]] = {}
    for k in a:
        by_a.setdefault(k.type, set()).add(k.value)
    for k in b:
        by_b.setdefault(k.type, set()).add(k.value)
    return sorted(t for t in by_a.keys() & by_b.keys() if by_a[t].isdisjoint(by_b[t]))
