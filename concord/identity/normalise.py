"""Normalisation for matching: names, emails, tax ids, phones and postcodes made comparable.

``record_from_data`` turns one canonical customer into the ``CustomerRecord`` every rule
compares; ``load_customer_records`` streams them out of the store and ``name_keys_in_store``
yields just their name keys (what the "common word" count of ``fuzzy_name`` needs), computed
the same way, so ``concord customers explain`` sees what the resolve stage saw.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cleanco.clean import prepare_default_terms
from cleanco.non_nfkd_map import NON_NFKD_MAP
from rapidfuzz import fuzz
from sqlalchemy import Text, cast, select, tuple_
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from concord.config import IdentityConfig
from concord.hashing import digest
from concord.identity.identifiers import IdentifierKey, record_identifiers
from concord.model import record_key
from concord.store import Store
from concord.store import tables as t

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_NON_DIGIT = re.compile(r"\D")
_DROP_CHARS = str.maketrans("", "", ".'’`´")
_SPACE_CHARS = re.compile(r"[^\w]+")
_STOPWORDS = frozenset({"the", "and", "und", "et", "of"})
ABBREVIATIONS: dict[str, str] = {
    "corporation": "corp",
    "company": "co",
    "incorporated": "inc",
    "limited": "ltd",
    "international": "intl",
    "brothers": "bros",
    "manufacturing": "mfg",
    "technologies": "tech",
    "technology": "tech",
    "industries": "ind",
    "associates": "assoc",
    "gesellschaft": "ges",
    "mit": "m",
    "beschrankter": "b",
    "haftung": "h",
}
"""Spelled-out words mapped to the abbreviation used in names, before legal forms are stripped."""


@functools.cache
def _legal_forms() -> frozenset[tuple[str, ...]]:
    """Legal-form token sequences from cleanco's term data (GmbH, Corp, S.A., Ltd, ...)."""
    forms = {tuple(parts) for _n, parts in prepare_default_terms()}
    forms |= {("gmbh", "co", "kg"), ("m", "b", "h"), ("ges", "m", "b", "h"), ("co", "kg")}
    return frozenset(forms)


def fold(text: str) -> str:
    """Case-folded text without accents (é -> e, ß -> ss, ø -> o)."""
    text = text.casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(NON_NFKD_MAP.get(c, c) for c in decomposed if unicodedata.category(c) != "Mn")


LONG_LEGAL_WORDS = (
    "corporation",
    "incorporated",
    "limited",
    "company",
    "gesellschaft",
    "aktiengesellschaft",
    "unlimited",
)
"""Spelled-out legal forms also stripped when misspelt ("Corportion", "Limitd")."""


def _is_legal_form(tokens: list[str], forms: frozenset[tuple[str, ...]], size: int) -> bool:
    if tuple(tokens) in forms:
        return True
    return (
        size == 1
        and len(tokens[0]) >= 6
        and any(fuzz.ratio(tokens[0], w) >= 80 for w in LONG_LEGAL_WORDS)
    )


@functools.lru_cache(maxsize=262_144)
def split_name(name: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A name's words without legal forms, and the legal-form words stripped (in order)."""
    if not name:
        return (), ()
    text = _SPACE_CHARS.sub(" ", fold(name).replace("&", " and ").translate(_DROP_CHARS))
    tokens = [ABBREVIATIONS.get(tok, tok) for tok in text.split() if tok not in _STOPWORDS]
    forms = _legal_forms()
    stripped = list(tokens)
    removed: list[str] = []
    changed = True
    while changed and len(stripped) > 1:
        changed = False
        for size in (4, 3, 2, 1):
            if len(stripped) > size and _is_legal_form(stripped[-size:], forms, size):
                removed = stripped[-size:] + removed
                del stripped[-size:]
                changed = True
                break
            if len(stripped) > size and tuple(stripped[:size]) in forms:
                removed = stripped[:size] + removed
                del stripped[:size]
                changed = True
                break
    if not stripped:
        return tuple(tokens), ()
    return tuple(stripped), tuple(removed)


@functools.lru_cache(maxsize=262_144)
def name_key(name: str | None, sort_tokens: bool = False) -> str:
    """Comparable company or person name: folded, abbreviated, legal forms stripped.

    "ACME Corporation GmbH", "Acme Corp." and "acme corp" all give "acme". With ``sort_tokens``
    (used for private persons) word order does not matter: "Smith John" == "John Smith". A name
    made only of legal-form words is kept whole.
    """
    kept, _removed = split_name(name)
    return " ".join(sorted(kept) if sort_tokens else kept)


LEGAL_FORM_CLASSES: dict[str, str] = {
    "corp": "inc",
    "inc": "inc",
    "incorporated": "inc",
    "corporation": "inc",
    "co": "co",
    "company": "co",
    "limited": "ltd",
    "ltd": "ltd",
    "mbh": "gmbh",
    "gesmbh": "gmbh",
    "gmbh": "gmbh",
    "aktiengesellschaft": "ag",
    "gmbhcokg": "kg",
    "cokg": "kg",
}
"""Spellings of one legal form mapped to one class: Corp, Corporation and Inc. are all US
corporations; G.m.b.H. and GmbH one German form."""


@functools.lru_cache(maxsize=262_144)
def legal_form(name: str | None) -> str | None:
    """The legal form a company name carries, as a class (``gmbh``, ``inc``, ``sa``...), or None.

    Misspelt long forms ("Corportion") count as the form they resemble.
    """
    _kept, removed = split_name(name)
    if not removed:
        return None
    joined = "".join(ABBREVIATIONS.get(w, w) for w in removed if w not in ("and",))
    if joined in LEGAL_FORM_CLASSES:
        return LEGAL_FORM_CLASSES[joined]
    if len(removed) == 1 and len(joined) >= 6:
        best = max(LONG_LEGAL_WORDS, key=lambda w: fuzz.ratio(joined, w))
        return LEGAL_FORM_CLASSES.get(ABBREVIATIONS.get(best, best), best)
    last = ABBREVIATIONS.get(removed[-1], removed[-1])
    return LEGAL_FORM_CLASSES.get(joined, LEGAL_FORM_CLASSES.get(last, joined))


def normalise_email(value: str | None, free_mail: frozenset[str] = frozenset()) -> str | None:
    """Lower-cased address; None for shared free-mail domains (they do not identify a company)."""
    if not value or "@" not in value:
        return None
    email = value.strip().lower()
    if email.rsplit("@", 1)[1] in free_mail:
        return None
    return email


def email_domain(value: str | None, free_mail: frozenset[str] = frozenset()) -> str | None:
    """The domain of a company address (None for free-mail domains)."""
    email = normalise_email(value, free_mail)
    return email.rsplit("@", 1)[1] if email else None


@functools.lru_cache(maxsize=65536)
def normalise_tax_id(value: str | None, country: str | None = None) -> str | None:
    """Compact, validated VAT number with country prefix (python-stdnum); None if invalid.

    EU numbers are validated by ``stdnum.eu.vat``; other countries (GB, CH, NO, ...) by their
    ``vat`` module when the record's country is known.
    """
    if not value:
        return None
    compact = _NON_ALNUM.sub("", value).upper()
    if not compact:
        return None
    if country and not compact[:2].isalpha():
        compact = country.upper() + compact
    try:
        return str(eu_vat.validate(compact))
    except StdnumError:
        pass
    cc = compact[:2].lower()
    try:
        module = get_cc_module(cc, "vat")
    except (ImportError, ValueError):
        module = None
    if module is None:
        return None
    try:
        return cc.upper() + _NON_ALNUM.sub("", str(module.validate(compact[2:]))).upper()
    except StdnumError:
        try:
            return cc.upper() + _NON_ALNUM.sub("", str(module.validate(compact))).upper()
        except StdnumError:
            return None


def normalise_phone(value: str | None) -> str | None:
    """Last nine digits of a phone number (drops country and trunk prefixes); None if too short."""
    if not value:
        return None
    digits = _NON_DIGIT.sub("", value)
    return digits[-9:] if len(digits) >= 6 else None


def normalise_postcode(value: str | None) -> str | None:
    """Postcode without spaces or punctuation, upper-cased; None when empty."""
    if not value:
        return None
    code = _NON_ALNUM.sub("", value).upper()
    return code or None


@dataclass(slots=True)
class CustomerRecord:
    """What identity needs of one canonical customer row, already normalised for matching."""

    source: str
    source_id: str
    name: str
    name_key: str
    country: str | None
    is_person: bool
    tax_id: str | None
    emails: tuple[str, ...]
    email_domains: tuple[str, ...]
    phones: tuple[str, ...]
    postcodes: tuple[str, ...]
    cities: tuple[str, ...]
    crossrefs: tuple[str, ...]
    updated_at: datetime | None = None
    identifiers: tuple[IdentifierKey, ...] = ()
    legal_form: str | None = None
    given_key: str = ""
    family_key: str = ""
    birth_date: str | None = None
    street: str = ""
    relations: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The record key, ``source:id``."""
        return record_key(self.source, self.source_id)


def record_from_data(
    source: str,
    source_id: str,
    data: dict[str, Any],
    free_mail: frozenset[str],
    updated_at: datetime | None = None,
) -> CustomerRecord:
    """Normalise one canonical customer (``Customer.model_dump(mode='json')``) for matching."""
    country = data.get("country") or None
    raw_emails = data.get("emails") or []
    emails = tuple(e for e in (normalise_email(x, free_mail) for x in raw_emails) if e)
    addresses = [a for a in data.get("addresses") or [] if isinstance(a, dict)]
    if country is None:
        country = next((a.get("country") for a in addresses if a.get("country")), None)
    given, family = person_names(data)
    return CustomerRecord(
        source=source,
        source_id=source_id,
        name=str(data.get("name") or ""),
        name_key=record_name_key(data),
        country=country,
        is_person=bool(data.get("is_person")),
        tax_id=normalise_tax_id(data.get("tax_id"), country),
        emails=emails,
        email_domains=tuple(sorted({e.rsplit("@", 1)[1] for e in emails})),
        phones=tuple(p for p in (normalise_phone(x) for x in data.get("phones") or []) if p),
        postcodes=tuple(p for p in (normalise_postcode(a.get("postcode")) for a in addresses) if p),
        cities=tuple(fold(a["city"]).strip() for a in addresses if a.get("city")),
        crossrefs=tuple(str(x) for x in data.get("crossrefs") or [] if x),
        updated_at=updated_at,
        identifiers=record_identifiers(data.get("tax_id"), data.get("identifiers") or [], country),
        legal_form=None if data.get("is_person") else legal_form(data.get("name")),
        given_key=given,
        family_key=family,
        birth_date=str(data["birth_date"])[:10] if data.get("birth_date") else None,
        street=street_key(next((a.get("line") for a in addresses if a.get("line")), None)),
        relations=tuple(
            (str(r.get("kind") or "related"), relation_key(source, str(r["ref"])))
            for r in data.get("relations") or []
            if isinstance(r, dict) and r.get("ref")
        ),
    )


def relation_key(source: str, ref: str) -> str:
    """The record key a relation names: ``source:id`` as given, or an id in the same source."""
    if ":" in ref:
        head, _, rest = ref.partition(":")
        if rest.startswith("customers:"):
            return record_key(head, rest.removeprefix("customers:"))
        return ref
    return record_key(source, ref)


NICKNAMES: dict[str, str] = {
    "bill": "william",
    "billy": "william",
    "will": "william",
    "willi": "wilhelm",
    "bob": "robert",
    "bobby": "robert",
    "rob": "robert",
    "dick": "richard",
    "rick": "richard",
    "jim": "james",
    "jimmy": "james",
    "mike": "michael",
    "micha": "michael",
    "tom": "thomas",
    "tommy": "thomas",
    "joe": "joseph",
    "sepp": "josef",
    "hans": "johannes",
    "jo": "johanna",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "betty": "elizabeth",
    "lisa": "elisabeth",
    "kate": "katherine",
    "katie": "katherine",
    "kathy": "katherine",
    "cathy": "catherine",
    "sue": "susan",
    "susi": "susanne",
    "chris": "christopher",
    "matt": "matthew",
    "dave": "david",
    "steve": "steven",
    "tony": "anthony",
    "alex": "alexander",
    "sam": "samuel",
    "ben": "benjamin",
    "dan": "daniel",
    "nick": "nicholas",
    "pete": "peter",
    "fritz": "friedrich",
    "franz": "franziska",
    "lena": "helena",
    "greta": "margarete",
    "maggie": "margaret",
    "peggy": "margaret",
    "jenny": "jennifer",
    "andy": "andrew",
    "ed": "edward",
    "ted": "edward",
    "ulli": "ulrich",
    "rene": "renate",
}
"""Common nicknames mapped to the given name they stand for (Bill -> William)."""


def _person_word(value: str | None) -> str:
    if not value:
        return ""
    word = _SPACE_CHARS.sub(" ", fold(value).translate(_DROP_CHARS)).strip()
    return word


def person_names(data: dict[str, Any]) -> tuple[str, str]:
    """Comparable (given name, family name) of a private person; empty for companies.

    ``given_name`` / ``family_name`` when the source has them, else split from ``name``
    ("Smith, John" or "John Smith"); a nickname becomes the name it stands for.
    """
    if not data.get("is_person"):
        return "", ""
    given = _person_word(data.get("given_name"))
    family = _person_word(data.get("family_name"))
    if not given and not family:
        name = str(data.get("name") or "")
        if "," in name:
            family_part, _, given_part = name.partition(",")
            given, family = _person_word(given_part), _person_word(family_part)
        else:
            words = _person_word(name).split()
            if len(words) >= 2:
                given, family = words[0], " ".join(words[1:])
            elif words:
                family = words[0]
    first = given.split()[0] if given else ""
    return NICKNAMES.get(first, first), family


_STREET_WORDS = {
    "strasse": "str",
    "straße": "str",
    "street": "st",
    "road": "rd",
    "avenue": "ave",
    "rue": "r",
    "platz": "pl",
    "weg": "wg",
}


def street_key(line: str | None) -> str:
    """A comparable street line: folded, punctuation dropped, common words abbreviated."""
    if not line:
        return ""
    text = _SPACE_CHARS.sub(" ", fold(line).translate(_DROP_CHARS)).strip()
    text = re.sub(r"(\w)(strasse|str)\b", r"\1 str", text)
    return " ".join(_STREET_WORDS.get(w, w) for w in text.split())


def record_name_key(data: dict[str, Any]) -> str:
    """The name key of a canonical customer: word order ignored for private persons."""
    return name_key(data.get("name"), bool(data.get("is_person")))


NORMALISE_VERSION = "1"
"""Bump when ``record_from_data`` changes what it makes of a row: the stored records go stale."""
_FIELDS = tuple(
    f for f in CustomerRecord.__dataclass_fields__ if f not in ("source", "source_id", "updated_at")
)


_TUPLES = [
    i
    for i, f in enumerate(_FIELDS)
    if f in ("emails", "email_domains", "phones", "postcodes", "cities", "crossrefs")
]
_RELATIONS, _IDENTIFIERS = _FIELDS.index("relations"), _FIELDS.index("identifiers")
_UPDATED = list(CustomerRecord.__dataclass_fields__).index("updated_at") - 2


def _encoded(rec: CustomerRecord) -> bytes:
    """A normalised record's fields as JSON (``identity_records.record``)."""
    values: list[Any] = [getattr(rec, f) for f in _FIELDS]
    values[_FIELDS.index("identifiers")] = [[k.type, k.value, k.valid] for k in rec.identifiers]
    return orjson.dumps(values)


def _decoded(source: str, sid: str, updated: datetime | None, blob: bytes) -> CustomerRecord:
    """``_encoded`` back: tuples where the record holds tuples."""
    values = orjson.loads(blob)
    for i in _TUPLES:
        values[i] = tuple(values[i])
    values[_RELATIONS] = tuple(tuple(pair) for pair in values[_RELATIONS])
    values[_IDENTIFIERS] = tuple(IdentifierKey(*k) for k in values[_IDENTIFIERS])
    fields: list[Any] = [source, sid, *values[:_UPDATED], updated, *values[_UPDATED:]]
    return CustomerRecord(*fields)


def load_customer_records(
    store: Store,
    config: IdentityConfig,
    keys: Iterable[tuple[str, str]] | None = None,
    *,
    remember: bool = False,
) -> list[CustomerRecord]:
    """Every canonical customer (or only ``keys``), normalised, sorted by key; streamed.

    A row normalised before, with the same data and settings, comes from ``identity_records``
    (parsing phone numbers and checking tax ids was most of a quiet night's resolve);
    ``remember`` stores what had to be normalised (the resolve stage) and drops records of
    customers gone.
    """
    free_mail = frozenset(d.lower() for d in config.free_mail_domains)
    salt = f"{NORMALISE_VERSION}\x1f{'|'.join(sorted(free_mail))}\x1f".encode()
    c, ir = t.customers, t.identity_records
    q = select(
        c.c.source, c.c.source_id, c.c.updated_at, cast(c.c.data, Text), ir.c.basis, ir.c.record
    ).select_from(c.outerjoin(ir, (ir.c.source == c.c.source) & (ir.c.source_id == c.c.source_id)))
    q = q.where(c.c.state.is_(None))  # archived or deleted in the ERP: no longer a customer
    if keys is not None:
        q = q.where(tuple_(c.c.source, c.c.source_id).in_(list(keys)))
    out: list[CustomerRecord] = []
    fresh: list[dict[str, Any]] = []
    # remember: the records normalised are stored as the read goes, in its transaction (a
    # night's worth held until the end was a first night's resolve peak memory)
    with store.begin() if remember else store.engine.connect() as conn:
        # streamed per statement: the upserts on the same connection use plain cursors
        result = conn.execute(q, execution_options={"yield_per": _BATCH})
        for source, sid, updated, data, stored_basis, blob in result:
            basis = digest(salt + data.encode())[:32]
            if stored_basis == basis and blob is not None:
                out.append(_decoded(source, sid, updated, bytes(blob)))
                continue
            rec = record_from_data(source, sid, orjson.loads(data), free_mail, updated)
            out.append(rec)
            if remember:
                fresh.append(
                    {"source": source, "source_id": sid, "basis": basis, "record": _encoded(rec)}
                )
                if len(fresh) >= _BATCH:
                    store.upsert(conn, ir, fresh, ["source", "source_id"])
                    fresh = []
        if remember:
            store.upsert(conn, ir, fresh, ["source", "source_id"])
            live = select(c.c.source_id).where(
                c.c.source == ir.c.source, c.c.source_id == ir.c.source_id, c.c.state.is_(None)
            )
            conn.execute(ir.delete().where(~live.exists()))
    out.sort(key=lambda r: r.key)
    return out


_BATCH = 5000
"""Rows read per fetch and normalised records stored per statement."""


def name_keys_in_store(store: Store) -> Iterator[str]:
    """The name key of every canonical customer, streamed (no other field is normalised)."""
    c = t.customers
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
            select(cast(c.c.data, Text)).where(c.c.state.is_(None))
        )
        for (data,) in result:
            yield record_name_key(orjson.loads(data))


def record_fingerprint(rec: CustomerRecord) -> str:
    """A hash of everything identity compares of a record: equal means nothing to re-link."""
    parts = (
        rec.name_key,
        rec.country or "",
        str(rec.is_person),
        rec.tax_id or "",
        "|".join(rec.emails),
        "|".join(rec.phones),
        "|".join(rec.postcodes),
        "|".join(rec.cities),
        "|".join(rec.crossrefs),
        "|".join(f"{k.type}:{k.value}" for k in rec.identifiers),
        rec.legal_form or "",
        rec.given_key,
        rec.family_key,
        rec.birth_date or "",
        rec.street,
        "|".join(f"{k}:{v}" for k, v in rec.relations),
    )
    return digest("\x1f".join(parts).encode())[:32]
