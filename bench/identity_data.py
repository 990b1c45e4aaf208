"""Generated customer bases with a known truth for the identity benchmark.

``persons(n, seed)``: private persons in two to three sources with the error model of public
person-linkage benchmarks: typos, swapped given/family names, dropped given names, nicknames,
moved postcodes (a person moved: new street and postcode), missing fields, date-of-birth typos,
and namesakes (same common name, different person) as hard negatives.

``companies(n, seed)``: companies with legal-form variants (GmbH / G.m.b.H., Corp /
Corporation), branches and head offices sharing an e-mail and linked by ``bill_to`` (different
VAT numbers and countries: related, not the same), conflicting identifiers (same name, different
VAT or EIN, invalid checksums included), names that differ only in legal form across countries,
dense postcodes (few distinct postcodes and cities), sibling names, typos and missing fields.

Each record is ``(source, source_id, canonical customer data, truth id)``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from typing import Any

from stdnum.iso7064 import mod_11_10

Row = tuple[str, str, dict[str, Any], int]

SOURCES = ("erp_a", "erp_b", "crm")
GIVEN = (
    "anna ben clara david emma felix greta hugo ida jonas karl lea max nina otto paula rene "
    "sara tom ulla vera willi yvonne zoe marie paul lukas sophie jan laura william robert james "
    "michael thomas joseph elizabeth katherine susan christopher matthew daniel peter margaret "
    "jennifer andrew edward olivia noah liam mia leon finn emil hanna lina ella mila theo"
).split()
NICK = {
    "william": "bill",
    "robert": "bob",
    "james": "jim",
    "michael": "mike",
    "thomas": "tom",
    "joseph": "joe",
    "elizabeth": "liz",
    "katherine": "kate",
    "susan": "sue",
    "christopher": "chris",
    "matthew": "matt",
    "daniel": "dan",
    "peter": "pete",
    "margaret": "maggie",
    "jennifer": "jenny",
    "andrew": "andy",
    "edward": "ed",
}
SYL = (
    "ka ro vin ta mel dor bri sen lu fa gor hal ix ne pra quo ri sto tur ul ven wal xa yor zel "
    "ber cas den fel gan hes jor kel lan mor nor pel ras sol tam vel win mann er ig"
).split()
STREETS = "Haupt Bahnhof Garten Schul Kirch Linden Berg Wald Dorf Ring Park Mühl Rosen".split()
CITY_NAMES = "Berlin Hamburg München Köln Frankfurt Stuttgart Leipzig Dresden Bremen Essen".split()
INDUSTRY = (
    "Logistik Bau Consulting Software Foods Textil Metall Chemie Elektro Holz Druck Medien "
    "Transport Handel Pharma Optik Solar Energie Immobilien Systems Labs Trading Partners"
).split()
LEGAL = {
    "DE": ["GmbH", "AG", "KG"],
    "FR": ["SA", "SARL"],
    "GB": ["Ltd", "PLC"],
    "US": ["Inc", "Corp", "LLC"],
}
LEGAL_VARIANT = {
    "GmbH": "G.m.b.H.",
    "Inc": "Inc.",
    "Corp": "Corporation",
    "Ltd": "Limited",
    "SA": "S.A.",
    "SARL": "S.A.R.L.",
    "AG": "AG",
    "KG": "KG",
    "PLC": "plc",
    "LLC": "L.L.C.",
}
COUNTRIES = ("DE", "DE", "FR", "GB", "US")


def typo(rng: random.Random, text: str) -> str:
    """One edit: deletion, transposition or substitution (not the first letter)."""
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    return text[:i] + rng.choice(string.ascii_lowercase) + text[i + 1 :]


def _surname(rng: random.Random, pool: list[str]) -> str:
    # Zipf-like: a few very common surnames, a long tail.
    if rng.random() < 0.3:
        return pool[min(int(rng.paretovariate(1.2)) - 1, 40)]
    return pool[rng.randrange(len(pool))]


def persons(n: int, seed: int = 7) -> list[Row]:
    """About ``n`` person records (several per true person) with a known truth."""
    rng = random.Random(seed)
    pool = sorted(
        {
            "".join(rng.choice(SYL) for _ in range(rng.choice((2, 3)))).capitalize()
            for _ in range(max(n // 3, 200))
        }
    )
    n_postcodes = max(n // 40, 30)
    rows: list[Row] = []
    pid = 0
    while len(rows) < n:
        pid += 1
        given = rng.choice(GIVEN)
        family = _surname(rng, pool)
        dob = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        postcode = f"{rng.randrange(n_postcodes) * 7 % 90000 + 10000:05d}"
        street = f"{rng.choice(STREETS)}straße {rng.randint(1, 120)}"
        city = rng.choice(CITY_NAMES)
        email = f"{given}.{family.lower()}{rng.randint(1, 99)}@example-mail.de"
        phone = f"+49 30 {rng.randint(1_000_000, 9_999_999)}"
        copies = rng.choice((1, 2, 2, 2, 3))
        for c in range(copies):
            g, f, d, pc, st, em, ph = given, family, dob, postcode, street, email, phone
            if c > 0:
                r = rng.random
                if r() < 0.25:
                    g = typo(rng, g)
                if r() < 0.2:
                    f = typo(rng, f)
                if r() < 0.06:
                    g, f = f, g
                if r() < 0.08 and given in NICK:
                    g = NICK[given]
                if r() < 0.08:
                    g = ""
                if r() < 0.1:
                    d = d[:8] + f"{rng.randint(1, 28):02d}"
                if r() < 0.15:
                    d = ""
                if r() < 0.15:  # moved
                    pc = f"{rng.randrange(n_postcodes) * 7 % 90000 + 10000:05d}"
                    st = f"{rng.choice(STREETS)}weg {rng.randint(1, 60)}"
                if r() < 0.2:
                    st = ""
                if r() < 0.4:
                    em = ""
                if r() < 0.4:
                    ph = ""
            data: dict[str, Any] = {
                "name": f"{g.capitalize()} {f}".strip(),
                "is_person": True,
                "given_name": g.capitalize() or None,
                "family_name": f or None,
                "birth_date": d or None,
                "emails": [em] if em else [],
                "phones": [ph] if ph else [],
                "addresses": [{"line": st or None, "postcode": pc, "city": city, "country": "DE"}],
                "country": "DE",
            }
            source = SOURCES[c % len(SOURCES)]
            rows.append((source, f"P{pid}-{c}", data, pid))
    return rows[:n]


def _de_vat(rng: random.Random) -> str:
    body = str(rng.randint(10_000_000, 99_999_999))
    return "DE" + body + mod_11_10.calc_check_digit(body)


def _vat(rng: random.Random, country: str) -> str:
    if country == "DE":
        return _de_vat(rng)
    # Other countries' numbers as ERPs hold them: often failing the checksum.
    return country + str(rng.randint(100_000_000, 999_999_999))


def companies(n: int, seed: int = 11) -> list[Row]:
    """About ``n`` company records with a known truth and the hard cases of a real NAV list."""
    rng = random.Random(seed)
    n_postcodes = max(n // 150, 8)  # dense: many companies per postcode
    rows: list[Row] = []
    cid = 0
    used: set[str] = set()

    def base_name() -> str:
        while True:
            w = "".join(rng.choice(SYL) for _ in range(rng.choice((2, 3)))).capitalize()
            name = f"{w} {rng.choice(INDUSTRY)}" if rng.random() < 0.6 else w
            if name not in used:
                used.add(name)
                return name

    def emit(truth: int, source: str, sid: str, data: dict[str, Any]) -> None:
        rows.append((source, sid, data, truth))

    while len(rows) < n:
        cid += 1
        country = rng.choice(COUNTRIES)
        name = base_name()
        form = rng.choice(LEGAL[country])
        vat = _vat(rng, country) if rng.random() < 0.7 else None
        ein = (
            f"{rng.randint(10, 99)}-{rng.randint(1_000_000, 9_999_999)}"
            if country == "US" and rng.random() < 0.6
            else None
        )
        postcode = f"{rng.randrange(n_postcodes) * 37 % 90000 + 10000:05d}"
        city = CITY_NAMES[rng.randrange(3)]
        street = f"{rng.choice(STREETS)}straße {rng.randint(1, 200)}"
        domain = f"{name.split()[0].lower()}{cid}.com"
        email = f"info@{domain}"
        phone = f"+{rng.randint(10, 99)} {rng.randint(10_000_000, 99_999_999)}"
        case = rng.random()
        copies = rng.choice((1, 2, 2, 3))
        for c in range(copies):
            nm, fm, st, pc, em, ph, vt = name, form, street, postcode, email, phone, vat
            if c > 0:
                r = rng.random
                if r() < 0.3:
                    nm = typo(rng, nm)
                if r() < 0.3:
                    fm = LEGAL_VARIANT.get(fm, fm)
                if r() < 0.1:
                    fm = ""
                if r() < 0.15:
                    nm = nm.upper()
                if r() < 0.2:
                    st = ""
                if r() < 0.15:
                    st = typo(rng, st)
                if r() < 0.3:
                    em = f"{rng.choice(('sales', 'office', 'buchhaltung'))}@{domain}"
                if r() < 0.3:
                    ph = ""
                if r() < 0.3:
                    vt = None
            ids = (
                [{"type": "us_ein", "value": ein}] if ein and (c == 0 or rng.random() < 0.5) else []
            )
            emit(
                cid,
                SOURCES[c % len(SOURCES)],
                f"C{cid}-{c}",
                {
                    "name": f"{nm} {fm}".strip(),
                    "tax_id": vt,
                    "identifiers": ids,
                    "country": country,
                    "emails": [em] if em else [],
                    "phones": [ph] if ph else [],
                    "addresses": [
                        {"line": st or None, "postcode": pc, "city": city, "country": country}
                    ],
                },
            )
        if case < 0.08:
            # A branch: own account, bill-to the head office, same e-mail, other VAT/country.
            cid += 1
            bcountry = rng.choice([c for c in ("DE", "FR", "GB", "US") if c != country])
            emit(
                cid,
                "erp_a",
                f"B{cid}",
                {
                    "name": f"{name} {rng.choice(LEGAL[bcountry])}",
                    "tax_id": _vat(rng, bcountry),
                    "country": bcountry,
                    "emails": [email],
                    "phones": [],
                    "relations": [{"kind": "bill_to", "ref": f"C{cid - 1}-0"}],
                    "addresses": [
                        {
                            "line": f"{rng.choice(STREETS)}weg {rng.randint(1, 50)}",
                            "postcode": f"{rng.randint(10000, 99999)}",
                            "city": rng.choice(CITY_NAMES),
                            "country": bcountry,
                        }
                    ],
                },
            )
        elif case < 0.14:
            # Same name, other country and legal form, conflicting (maybe invalid) VAT.
            cid += 1
            ocountry = rng.choice([c for c in ("DE", "FR", "GB", "US") if c != country])
            emit(
                cid,
                "erp_b",
                f"X{cid}",
                {
                    "name": f"{name} {rng.choice(LEGAL[ocountry])}",
                    "tax_id": _vat(rng, ocountry),
                    "country": ocountry,
                    "emails": [email] if rng.random() < 0.5 else [],
                    "phones": [],
                    "addresses": [{"postcode": postcode, "city": city, "country": ocountry}],
                },
            )
        elif case < 0.2:
            # A sibling in the same postcode: one word different, its own VAT.
            cid += 1
            emit(
                cid,
                "erp_a",
                f"S{cid}",
                {
                    "name": f"{name} {rng.choice(INDUSTRY)} {form}",
                    "tax_id": _vat(rng, country),
                    "country": country,
                    "emails": [],
                    "phones": [],
                    "addresses": [{"postcode": postcode, "city": city, "country": country}],
                },
            )
    return rows[:n]


def iter_truth_pairs(rows: list[Row]) -> Iterator[tuple[int, int]]:
    """Index pairs of records of the same truth id."""
    by: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by.setdefault(row[3], []).append(i)
    for members in by.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                yield members[x], members[y]
