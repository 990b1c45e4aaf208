"""Deterministic, seeded ERP data for the sandbox: `ErpDataset.generate(seed, customers, now)`
builds customers (DE/FR/GB/US companies with valid VAT ids, some private persons), orders with 1-4
lines, shipments (some late, some returned), invoices (paid, open, overdue, a few credit notes) and
payments (some partial or failed); about a quarter of the customers have no order in the last 400
days, a few are new. Every record has "id" and an ISO-8601 "updated_at" ending in Z, and each entity
is kept in a list sorted by (updated_at, id) plus a dict by id, paged with bisect; `ErpStorage` is
the interface the REST server needs, so a SQLite-backed store can replace this one. Messy cases,
listed in `dataset.messy` as case -> [(entity, id)], are made on purpose: "missing_company" (two
customers, one with company "" and one without the key), "bad_order_date" (order_date "31/02/2025"),
"bad_amount" (amount_total "12,50 EUR"), "payment_missing_currency" (no currency key),
"duplicate_customers" (the last three customers repeat an earlier company with a different id and
different case or spelling, sharing its email or VAT id; `dataset.duplicate_of` maps each to its
original) and "orphan_order" (customer_id "C-99999", which does not exist). Not a listed case but
on purpose too: private persons may share a name while being different people."""

from __future__ import annotations

import bisect
import random
import threading
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

from stdnum import luhn
from stdnum.iso7064 import mod_11_10

ENTITIES: tuple[str, ...] = ("customers", "orders", "shipments", "invoices", "payments")
DEFAULT_NOW = datetime(2026, 11, 1, tzinfo=UTC)
ORPHAN_CUSTOMER_ID = "C-99999"

Record = dict[str, Any]
Key = tuple[datetime, str]

CENT = Decimal("0.01")


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with a Z, seconds precision unless there are microseconds."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601 (Z or offset; naive means UTC) to an aware UTC datetime; ValueError if bad."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


class ErpStorage(Protocol):
    """What `RestErpServer` needs from a data store (in memory here, SQLite in the bench)."""

    def page(
        self,
        entity: str,
        updated_since: datetime | None,
        updated_before: datetime | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Record]: ...

    def get(self, entity: str, id: str) -> Record | None: ...

    def has_entity(self, entity: str) -> bool: ...


class _Table:
    """One entity: records sorted by (updated_at, id) with parallel keys for bisect, and by id."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.rows: list[Record] = []
        self.by_id: dict[str, Record] = {}

    @staticmethod
    def key(record: Record) -> Key:
        return (parse_iso(record["updated_at"]), record["id"])

    def insert(self, record: Record) -> None:
        key = self.key(record)
        index = bisect.bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.rows.insert(index, record)
        self.by_id[record["id"]] = record

    def remove(self, record_id: str) -> Record:
        record = self.by_id.pop(record_id)
        index = bisect.bisect_left(self.keys, self.key(record))
        del self.keys[index]
        del self.rows[index]
        return record

    def bulk_load(self, records: list[Record]) -> None:
        pairs = sorted(((self.key(r), r) for r in records), key=lambda pair: pair[0])
        self.keys = [k for k, _ in pairs]
        self.rows = [r for _, r in pairs]
        self.by_id = {r["id"]: r for r in self.rows}


class ErpDataset:
    """In-memory ERP store. Records returned are shared: treat them as read-only (`update` replaces
    a record with a new dict, so a page already handed out never changes under its reader)."""

    def __init__(
        self,
        now: datetime = DEFAULT_NOW,
        messy: dict[str, list[tuple[str, str]]] | None = None,
        duplicate_of: dict[str, str] | None = None,
    ) -> None:
        self.now = now.astimezone(UTC)
        self.messy: dict[str, list[tuple[str, str]]] = messy or {}
        self.duplicate_of: dict[str, str] = duplicate_of or {}
        self._tables: dict[str, _Table] = {entity: _Table() for entity in ENTITIES}
        self._clock = self.now
        self._lock = threading.RLock()

    @classmethod
    def generate(
        cls, seed: int = 7, customers: int = 60, now: datetime = DEFAULT_NOW
    ) -> ErpDataset:
        """Build the dataset; the same arguments always give the same records."""
        if customers < 12:
            raise ValueError("customers must be at least 12 (room for the messy cases)")
        builder = _Builder(random.Random(seed), now.astimezone(UTC))
        records = builder.build(customers)
        dataset = cls(now=now, messy=builder.messy, duplicate_of=builder.dup_of)
        for entity in ENTITIES:
            dataset._tables[entity].bulk_load(records[entity])
        return dataset

    # -- reading -------------------------------------------------------------------------------

    def has_entity(self, entity: str) -> bool:
        return entity in self._tables

    def _table(self, entity: str) -> _Table:
        try:
            return self._tables[entity]
        except KeyError:
            raise KeyError(f"unknown entity {entity!r}") from None

    def page(
        self,
        entity: str,
        updated_since: datetime | None = None,
        updated_before: datetime | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[Record]:
        """Records with updated_since <= updated_at < updated_before, ordered by (updated_at, id),
        strictly after the `after` key (updated_at ISO string, id), at most `limit` of them."""
        table = self._table(entity)
        with self._lock:
            start = 0
            if updated_since is not None:
                start = bisect.bisect_left(table.keys, (updated_since.astimezone(UTC), ""))
            if after is not None:
                start = max(start, bisect.bisect_right(table.keys, (parse_iso(after[0]), after[1])))
            end = len(table.keys)
            if updated_before is not None:
                end = bisect.bisect_left(table.keys, (updated_before.astimezone(UTC), ""))
            return table.rows[start : max(start, min(end, start + limit))]

    def iter_all(self, entity: str) -> Iterator[Record]:
        """Every record of `entity` in (updated_at, id) order (a snapshot)."""
        with self._lock:
            rows = list(self._table(entity).rows)
        return iter(rows)

    def get(self, entity: str, id: str) -> Record | None:
        with self._lock:
            return self._table(entity).by_id.get(id)

    def count(self, entity: str) -> int:
        with self._lock:
            return len(self._table(entity).rows)

    def totals(self, entity: str, field: str, **equals: Any) -> Decimal:
        """Sum of `field` as Decimal over records whose other fields equal `equals` (e.g.
        state="done"); values that are missing or not plain decimals (messy cases) are skipped."""
        total = Decimal("0")
        with self._lock:
            rows = list(self._table(entity).rows)
        for record in rows:
            if any(record.get(k) != v for k, v in equals.items()):
                continue
            value = record.get(field)
            if not isinstance(value, str):
                continue
            try:
                total += Decimal(value)
            except InvalidOperation:
                continue
        return total

    # -- writing -------------------------------------------------------------------------------

    def _tick(self, at: datetime | None) -> str:
        if at is not None:
            moment = at.astimezone(UTC)
            self._clock = max(self._clock, moment)
            return iso(moment)
        self._clock = self._clock + timedelta(seconds=1)
        return iso(self._clock)

    def update(
        self,
        entity: str,
        id: str,
        *,
        at: datetime | None = None,
        **changes: Any,
    ) -> Record:
        """Apply `changes` to a record and set its updated_at to `at`, or else to an advancing
        clock (one second past the latest time handed out, starting at `now`), so an incremental
        pull sees it. Returns the new record."""
        table = self._table(entity)
        with self._lock:
            if id not in table.by_id:
                raise KeyError(f"{entity}/{id} not found")
            old = table.remove(id)
            record = {**old, **changes, "id": id, "updated_at": self._tick(at)}
            table.insert(record)
            return record

    def add(self, entity: str, record: Record) -> Record:
        """Add a new record; gives it updated_at from the clock when it has none."""
        table = self._table(entity)
        with self._lock:
            if "id" not in record:
                raise ValueError("record needs an id")
            if record["id"] in table.by_id:
                raise ValueError(f"{entity}/{record['id']} already exists")
            new = dict(record)
            if "updated_at" not in new:
                new["updated_at"] = self._tick(None)
            else:
                self._clock = max(self._clock, parse_iso(new["updated_at"]))
            table.insert(new)
            return new


# -- generation ---------------------------------------------------------------------------------

_COUNTRIES: dict[str, dict[str, Any]] = {
    "DE": {
        "currency": "EUR",
        "tax": Decimal("0.19"),
        "forms": ["GmbH", "GmbH", "AG", "GmbH & Co. KG"],
        "prefixes": [
            "Müller",
            "Schäfer",
            "Becker",
            "Hoffmann",
            "Krause",
            "Wagner",
            "Nordlicht",
            "Rheintal",
            "Alpenblick",
            "Hansa",
            "Brandt",
            "Lindner",
            "Weber",
            "Sonnenfeld",
            "Falk",
            "Elbe",
        ],
        "industries": [
            "Maschinenbau",
            "Logistik",
            "Elektrotechnik",
            "Druck",
            "Antriebstechnik",
            "Feinmechanik",
            "Software",
            "Metallbau",
            "Medizintechnik",
            "Verpackung",
            "Kunststoffe",
            "Hydraulik",
        ],
        "tld": "de",
        "cities": [
            ("Berlin", "10115", "30"),
            ("München", "80331", "89"),
            ("Hamburg", "20095", "40"),
            ("Köln", "50667", "221"),
            ("Stuttgart", "70173", "711"),
            ("Leipzig", "04109", "341"),
        ],
        "streets": ["Hauptstraße", "Industriestraße", "Bahnhofstraße", "Am Hafen", "Lindenallee"],
        "first": ["Jana", "Lukas", "Anna", "Felix", "Sophie", "Jonas"],
        "last": ["Schmidt", "Fischer", "Meyer", "Wolf", "Neumann", "Zimmermann"],
        "carriers": ["DHL", "DPD", "UPS"],
    },
    "FR": {
        "currency": "EUR",
        "tax": Decimal("0.20"),
        "forms": ["SAS", "SAS", "SARL", "SA"],
        "prefixes": [
            "Durand",
            "Lefèvre",
            "Moreau",
            "Bretagne",
            "Rhône",
            "Girard",
            "Provence",
            "Lambert",
            "Fontaine",
            "Garnier",
            "Loire",
            "Roux",
        ],
        "industries": [
            "Industries",
            "Emballages",
            "Composites",
            "Équipements",
            "Transports",
            "Optique",
            "Électronique",
            "Matériaux",
            "Agro",
            "Mécanique",
            "Informatique",
        ],
        "tld": "fr",
        "cities": [
            ("Paris", "75002", "1"),
            ("Lyon", "69002", "4"),
            ("Marseille", "13001", "4"),
            ("Toulouse", "31000", "5"),
            ("Nantes", "44000", "2"),
            ("Lille", "59000", "3"),
        ],
        "streets": [
            "rue de la République",
            "avenue Victor Hugo",
            "boulevard Voltaire",
            "rue du Commerce",
            "quai des Chartrons",
        ],
        "first": ["Camille", "Louis", "Chloé", "Hugo", "Manon", "Théo"],
        "last": ["Martin", "Bernard", "Dubois", "Petit", "Leroy", "Morel"],
        "carriers": ["Colissimo", "Chronopost", "DHL"],
    },
    "GB": {
        "currency": "GBP",
        "tax": Decimal("0.20"),
        "forms": ["Ltd", "Ltd", "Limited", "PLC"],
        "prefixes": [
            "Thames Valley",
            "Pennine",
            "Harrington",
            "Clyde",
            "Northgate",
            "Ashford",
            "Kestrel",
            "Windsor",
            "Oakridge",
            "Mersey",
            "Cotswold",
        ],
        "industries": [
            "Engineering",
            "Foods",
            "Fabrication",
            "Analytics",
            "Medical Supplies",
            "Aerospace",
            "Print",
            "Timber",
            "Marine",
            "Textiles",
        ],
        "tld": "co.uk",
        "cities": [
            ("London", "EC1A 1BB", "20"),
            ("Manchester", "M1 1AE", "161"),
            ("Birmingham", "B1 1BB", "121"),
            ("Leeds", "LS1 4DY", "113"),
            ("Bristol", "BS1 4DJ", "117"),
            ("Glasgow", "G1 1XQ", "141"),
        ],
        "streets": ["High Street", "Station Road", "Church Lane", "King Street", "Mill Road"],
        "first": ["Oliver", "Amelia", "George", "Isla", "Harry", "Emily"],
        "last": ["Smith", "Jones", "Taylor", "Brown", "Evans", "Walker"],
        "carriers": ["Royal Mail", "DPD", "UPS"],
    },
    "US": {
        "currency": "USD",
        "tax": Decimal("0.07"),
        "forms": ["Inc", "Inc", "Corp", "LLC"],
        "prefixes": [
            "Acme",
            "Bluewater",
            "Summit",
            "Lakeshore",
            "Redwood",
            "Granite Peak",
            "Pioneer",
            "Liberty",
            "Silver Creek",
            "Horizon",
            "Cascade",
            "Keystone",
        ],
        "industries": [
            "Industrial",
            "Systems",
            "Robotics",
            "Supply",
            "Analytics",
            "Tools",
            "Plastics",
            "Components",
            "Labs",
            "Freight",
            "Packaging",
            "Controls",
        ],
        "tld": "com",
        "cities": [
            ("New York, NY", "10001", "212"),
            ("Chicago, IL", "60601", "312"),
            ("Austin, TX", "78701", "512"),
            ("Seattle, WA", "98101", "206"),
            ("Boston, MA", "02108", "617"),
            ("Denver, CO", "80202", "303"),
        ],
        "streets": [
            "Main Street",
            "Market Street",
            "Elm Avenue",
            "Industrial Parkway",
            "Commerce Drive",
        ],
        "first": ["James", "Olivia", "Michael", "Emma", "Daniel", "Ava"],
        "last": ["Johnson", "Miller", "Davis", "Garcia", "Wilson", "Anderson"],
        "carriers": ["UPS", "FedEx", "USPS"],
    },
}
_COUNTRY_WEIGHTS = [("DE", 40), ("FR", 20), ("GB", 20), ("US", 20)]

_PRODUCTS: list[tuple[str, str, Decimal]] = [
    ("P-100", "Widget", Decimal("50.00")),
    ("P-110", "Widget XL", Decimal("79.90")),
    ("P-200", "Gear assembly", Decimal("245.00")),
    ("P-210", "Bearing set", Decimal("18.50")),
    ("P-300", "Control unit", Decimal("1290.00")),
    ("P-310", "Sensor kit", Decimal("342.75")),
    ("P-400", "Hydraulic hose 2m", Decimal("27.40")),
    ("P-410", "Valve block", Decimal("615.00")),
    ("P-500", "Service hour", Decimal("95.00")),
    ("P-600", "Spare parts pack", Decimal("149.99")),
]

_FORM_SPELLINGS = {
    "GmbH": "Gmbh.",
    "AG": "A.G.",
    "KG": "K.G.",
    "SAS": "S.A.S.",
    "SARL": "S.A.R.L.",
    "SA": "S.A.",
    "Ltd": "Ltd.",
    "Limited": "Ltd",
    "PLC": "plc",
}
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _slug(text: str) -> str:
    """ASCII letters and digits for e-mail domains: "Rhône Équipements" -> rhoneequipements."""
    text = unicodedata.normalize("NFKD", text.lower().translate(_GERMAN))
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


class _Builder:
    """Generates all entities with one seeded RNG; only deterministic operations are used."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.messy: dict[str, list[tuple[str, str]]] = {}
        self.dup_of: dict[str, str] = {}
        self.out: dict[str, list[Record]] = {e: [] for e in ENTITIES}
        self.name_pools: dict[str, list[str]] = {}
        self.name_rounds: dict[str, int] = {}
        self.seq = {"orders": 0, "shipments": 0, "invoices": 0, "payments": 0}

    # helpers
    def moment(self, start: datetime, end: datetime) -> datetime:
        if end <= start:
            return start
        seconds = int((end - start).total_seconds())
        return (start + timedelta(seconds=self.rng.randint(0, seconds))).replace(microsecond=0)

    def office_hours(self, day: datetime) -> datetime:
        return day.replace(
            hour=self.rng.randint(7, 17),
            minute=self.rng.choice([0, 15, 30, 45]),
            second=0,
            microsecond=0,
        )

    def clamp(self, moment: datetime) -> datetime:
        return min(moment, self.now - timedelta(minutes=1))

    def next_id(self, entity: str) -> int:
        self.seq[entity] += 1
        return self.seq[entity]

    def vat_id(self, country: str) -> str:
        rng = self.rng
        if country == "DE":
            body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
            return f"DE{body}{mod_11_10.calc_check_digit(body)}"
        if country == "FR":
            stem = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
            siren = stem + luhn.calc_check_digit(stem)
            key = (12 + 3 * (int(siren) % 97)) % 97
            return f"FR{key:02d}{siren}"
        if country == "GB":
            while True:  # ~2 in 97 random numbers pass the mod-97 check
                digits = "".join(str(rng.randint(0, 9)) for _ in range(9))
                weighted = sum(w * int(d) for w, d in zip(range(8, 1, -1), digits[:7], strict=True))
                if (weighted + int(digits[7:])) % 97 in (0, 55) and digits[0] != "0":
                    return f"GB{digits}"
        raise ValueError(f"no VAT id scheme for {country}")

    def company_stem(self, country: str) -> str:
        """A company name without legal form, unique until the country's combinations run out
        (then numbered: "Hansa Logistik 2")."""
        pool = self.name_pools.get(country)
        if not pool:
            spec = _COUNTRIES[country]
            rounds = self.name_rounds.get(country, 0) + 1
            self.name_rounds[country] = rounds
            suffix = "" if rounds == 1 else f" {rounds}"
            combos = [(p, f"{p} {i}{suffix}") for p in spec["prefixes"] for i in spec["industries"]]
            self.rng.shuffle(combos)
            # each prefix once before any prefix twice, so early names differ clearly
            uses: dict[str, int] = {}
            ranked: list[tuple[int, str]] = []
            for prefix, name in combos:
                ranked.append((uses.get(prefix, 0), name))
                uses[prefix] = uses.get(prefix, 0) + 1
            ranked.sort(key=lambda pair: pair[0])
            pool = [name for _, name in reversed(ranked)]
            self.name_pools[country] = pool
        return pool.pop()

    def phone(self, country: str, area: str) -> str:
        rng = self.rng
        if country == "DE":
            return f"+49 {area} {rng.randint(1000000, 9999999)}"
        if country == "FR":
            pairs = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
            return f"+33 {area} {pairs}"
        if country == "GB":
            return f"+44 {area} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        return f"+1 {area} 555 {rng.randint(100, 199):04d}"

    # customers
    def customer(self, number: int) -> Record:
        rng = self.rng
        country = rng.choices([c for c, _ in _COUNTRY_WEIGHTS], [w for _, w in _COUNTRY_WEIGHTS])[0]
        spec = _COUNTRIES[country]
        city, zip_code, area = rng.choice(spec["cities"])
        is_person = rng.random() < 0.12
        if is_person:
            first, last = rng.choice(spec["first"]), rng.choice(spec["last"])
            company = f"{first} {last}"
            email = f"{_slug(first)}.{_slug(last)}{rng.randint(1, 99)}@gmail.com"
            vat: str | None = None
        else:
            stem = self.company_stem(country)
            company = f"{stem} {rng.choice(spec['forms'])}"
            if rng.random() < 0.1:
                email = f"{_slug(stem)}@gmail.com"
            else:
                email = (
                    f"{rng.choice(['info', 'contact', 'accounts', 'sales'])}@"
                    f"{_slug(stem)}.{spec['tld']}"
                )
            vat = self.vat_id(country) if country != "US" and rng.random() < 0.9 else None
        created = self.moment(datetime(2022, 1, 3, tzinfo=UTC), self.now - timedelta(days=500))
        return {
            "id": f"C-{number:05d}",
            "company": company,
            "legal_name": company,
            "vat_id": vat,
            "country": country,
            "email": email,
            "phone": self.phone(country, area),
            "billing_address": {
                "street": f"{rng.choice(spec['streets'])} {rng.randint(1, 180)}"
                if country in ("DE", "GB")
                else f"{rng.randint(1, 180)} {rng.choice(spec['streets'])}",
                "city": city,
                "zip": zip_code,
                "country": country,
            },
            "currency": spec["currency"],
            "type": "person" if is_person else "company",
            "crm_ref": None,
            "created_at": iso(created),
            "updated_at": iso(created),
        }

    # orders and what follows them
    def order(self, customer: Record, at: datetime) -> Record:
        rng = self.rng
        n = self.next_id("orders")
        spec = _COUNTRIES[customer["country"]]
        lines: list[Record] = []
        for sku, name, price in rng.sample(_PRODUCTS, rng.randint(1, 4)):
            qty = rng.choice([1, 1, 2, 3, 5, 10]) if price < 500 else rng.randint(1, 2)
            lines.append({"sku": sku, "name": name, "qty": qty, "unit_price": money(price)})
        untaxed = sum((Decimal(line["unit_price"]) * line["qty"] for line in lines), Decimal(0))
        tax = (untaxed * spec["tax"]).quantize(CENT, rounding=ROUND_HALF_UP)
        age = self.now - at
        if age > timedelta(days=60):
            state = rng.choices(["done", "cancel"], [92, 8])[0]
        elif age > timedelta(days=14):
            state = rng.choices(["done", "shipped", "cancel"], [60, 32, 8])[0]
        else:
            state = rng.choices(["draft", "open", "confirmed", "shipped"], [15, 25, 35, 25])[0]
        currency = customer["currency"] if rng.random() < 0.95 else rng.choice(["EUR", "USD"])
        number = f"SO-{n:06d}"
        return {
            "id": number,
            "number": number,
            "customer_id": customer["id"],
            "order_date": iso(at),
            "state": state,
            "currency": currency,
            "amount_untaxed": money(untaxed),
            "amount_tax": money(tax),
            "amount_total": money(untaxed + tax),
            "lines": lines,
            "updated_at": iso(at),
        }

    def fulfil(self, order: Record, customer: Record, pay_days: int) -> None:
        """Shipment, invoice and payments for an order, and the order's final updated_at."""
        rng = self.rng
        ordered = parse_iso(order["order_date"])
        state = order["state"]
        last_change = ordered + timedelta(minutes=rng.randint(5, 240))
        if state in ("confirmed", "shipped", "done") and (
            state != "confirmed" or rng.random() < 0.5
        ):
            last_change = max(last_change, self.shipment(order, customer, ordered, state))
        if state in ("shipped", "done") and rng.random() < 0.96:
            last_change = max(last_change, self.invoice(order, customer, ordered, pay_days))
        if state == "cancel":
            last_change = ordered + timedelta(days=rng.randint(0, 5), hours=rng.randint(1, 9))
        order["updated_at"] = iso(self.clamp(last_change))

    def shipment(self, order: Record, customer: Record, ordered: datetime, state: str) -> datetime:
        rng = self.rng
        n = self.next_id("shipments")
        promised = self.office_hours(ordered + timedelta(days=rng.randint(3, 7)))
        ship = self.office_hours(ordered + timedelta(days=rng.randint(1, 4)))
        late = rng.random() < 0.15
        delivery: datetime | None = ship + timedelta(days=rng.randint(1, 3))
        if late:
            delivery = promised + timedelta(days=rng.randint(1, 10))
        ship_state = "delivered"
        if state == "confirmed":
            ship_state, delivery = "pending", None
        elif delivery is not None and delivery >= self.now:
            ship_state, delivery = "shipped", None
        elif state == "shipped" and rng.random() < 0.4:
            ship_state, delivery = "shipped", None
        elif rng.random() < 0.03:
            ship_state = "returned"
        carrier = rng.choice(_COUNTRIES[customer["country"]]["carriers"])
        changed = self.clamp((delivery or ship) + timedelta(hours=rng.randint(1, 30)))
        if ship_state == "pending":
            changed = self.clamp(ordered + timedelta(hours=rng.randint(1, 20)))
        self.out["shipments"].append(
            {
                "id": f"SH-{n:06d}",
                "number": f"WH/OUT/{n:05d}",
                "order_id": order["id"],
                "customer_id": customer["id"],
                "ship_date": iso(ship) if ship_state != "pending" else None,
                "delivery_date": iso(delivery) if delivery is not None else None,
                "promised_date": iso(promised),
                "carrier": carrier,
                "tracking_no": f"{_slug(carrier)[:3].upper()}{rng.randint(10**11, 10**12 - 1)}",
                "state": ship_state,
                "updated_at": iso(changed),
            }
        )
        if ship_state == "returned":
            self.credit_note(order, customer, changed)
        return changed

    def invoice(
        self, order: Record, customer: Record, ordered: datetime, pay_days: int
    ) -> datetime:
        rng = self.rng
        n = self.next_id("invoices")
        issued = self.office_hours(ordered + timedelta(days=rng.randint(1, 6)))
        if issued >= self.now:
            issued = self.clamp(ordered + timedelta(hours=2))
        due = issued + timedelta(days=rng.choice([14, 30, 30, 30, 45]))
        total = Decimal(order["amount_total"])
        invoice_id = f"INV-{n:06d}"
        paid_at = issued + timedelta(days=max(0, int(rng.gauss(pay_days, pay_days / 3))))
        changed = issued + timedelta(minutes=rng.randint(1, 120))
        paid = Decimal(0)
        state = "posted"
        if self.now - issued < timedelta(days=2) and rng.random() < 0.5:
            state = "draft"
        elif rng.random() < 0.02:
            state = "cancelled"
        elif paid_at < self.now and rng.random() < 0.9:
            method = self.method(order["currency"])
            if rng.random() < 0.08:  # a failed attempt first
                self.payment(
                    customer,
                    invoice_id,
                    order["currency"],
                    total,
                    paid_at - timedelta(days=rng.randint(1, 5)),
                    method,
                    "failed",
                )
            if rng.random() < 0.12 and total > 100:  # paid in two parts
                first = (total * Decimal("0.5")).quantize(CENT)
                first_at = paid_at - timedelta(days=rng.randint(3, 20))
                self.payment(
                    customer, invoice_id, order["currency"], first, first_at, method, "done"
                )
                self.payment(
                    customer, invoice_id, order["currency"], total - first, paid_at, method, "done"
                )
            else:
                self.payment(
                    customer, invoice_id, order["currency"], total, paid_at, method, "done"
                )
            paid, state = total, "paid"
            changed = paid_at + timedelta(hours=rng.randint(1, 12))
        elif rng.random() < 0.25 and total > 100:  # partly paid, still open
            part = (total * Decimal("0.3")).quantize(CENT)
            part_at = self.moment(issued, min(due, self.now - timedelta(hours=2)))
            self.payment(
                customer,
                invoice_id,
                order["currency"],
                part,
                part_at,
                self.method(order["currency"]),
                "done",
            )
            paid = part
            changed = part_at + timedelta(hours=1)
        self.out["invoices"].append(
            {
                "id": invoice_id,
                "number": f"INV/{issued.year}/{n:05d}",
                "order_id": order["id"],
                "customer_id": customer["id"],
                "invoice_date": iso(issued),
                "due_date": iso(due.replace(hour=0, minute=0)),
                "currency": order["currency"],
                "amount_total": money(total),
                "amount_due": money(Decimal(0) if state == "cancelled" else total - paid),
                "state": state,
                "type": "invoice",
                "updated_at": iso(self.clamp(changed)),
            }
        )
        return self.clamp(changed)

    def credit_note(self, order: Record, customer: Record, at: datetime) -> None:
        n = self.next_id("invoices")
        issued = self.clamp(at + timedelta(days=1))
        self.out["invoices"].append(
            {
                "id": f"INV-{n:06d}",
                "number": f"RINV/{issued.year}/{n:05d}",
                "order_id": order["id"],
                "customer_id": customer["id"],
                "invoice_date": iso(issued),
                "due_date": iso((issued + timedelta(days=14)).replace(hour=0, minute=0, second=0)),
                "currency": order["currency"],
                "amount_total": order["amount_total"],
                "amount_due": order["amount_total"],
                "state": "posted",
                "type": "credit_note",
                "updated_at": iso(issued),
            }
        )

    def method(self, currency: str) -> str:
        options = (
            ["bank_transfer", "card", "sepa_dd"] if currency == "EUR" else ["bank_transfer", "card"]
        )
        return self.rng.choice(options)

    def payment(
        self,
        customer: Record,
        invoice_id: str,
        currency: str,
        amount: Decimal,
        at: datetime,
        method: str,
        state: str,
    ) -> None:
        n = self.next_id("payments")
        at = self.clamp(at)
        if state == "done" and self.rng.random() < 0.01:
            state = "refunded"
        self.out["payments"].append(
            {
                "id": f"PAY-{n:06d}",
                "reference": f"PAY/{at.year}/{n:05d}",
                "customer_id": customer["id"],
                "invoice_id": invoice_id,
                "payment_date": iso(at),
                "currency": currency,
                "amount": money(amount),
                "method": method,
                "state": state,
                "updated_at": iso(self.clamp(at + timedelta(minutes=self.rng.randint(1, 90)))),
            }
        )

    def order_dates(self, customer: Record, profile: str) -> list[datetime]:
        rng = self.rng
        created = parse_iso(customer["created_at"])
        if profile == "lapsed":
            end = self.now - timedelta(days=rng.randint(400, 700))
            count = rng.randint(1, 6)
        elif profile == "new":
            created = self.now - timedelta(days=rng.randint(10, 80), seconds=rng.randint(0, 86399))
            customer["created_at"] = customer["updated_at"] = iso(created)
            end = self.now - timedelta(days=1)
            count = rng.randint(1, 2)
        else:
            end = self.now - timedelta(hours=rng.randint(2, 24 * 45))
            count = min(40, max(2, int(rng.paretovariate(1.3) * 3)))
        start = created + timedelta(days=1)
        if end <= start:
            start = end - timedelta(days=30)
        dates = [self.office_hours(self.moment(start, end)) for _ in range(count - 1)]
        dates.append(self.office_hours(end))  # the last order marks the profile's recency
        if profile == "active" and rng.random() < 0.4:  # something still in progress
            dates.append(self.office_hours(self.now - timedelta(days=rng.randint(1, 20))))
        return sorted(dates)

    def build(self, count: int) -> dict[str, list[Record]]:
        rng = self.rng
        regular = count - 3
        customers = [self.customer(i + 1) for i in range(regular)]
        # three duplicates of earlier companies (originals chosen among companies with VAT ids)
        originals = [c for c in customers[3:] if c["type"] == "company" and c["vat_id"]][:3]
        for i, original in enumerate(originals):
            dup = self.customer(regular + i + 1)
            for key in ("country", "currency", "type", "billing_address", "phone"):
                dup[key] = original[key]
            name = original["company"]
            if i == 0:
                dup["company"] = dup["legal_name"] = name.upper()
                dup["email"], dup["vat_id"] = original["email"], None
            elif i == 1:
                stem, _, form = name.rpartition(" ")
                spelled = _FORM_SPELLINGS.get(form, form)
                dup["company"] = dup["legal_name"] = f"{stem}  {spelled} "
                dup["vat_id"] = original["vat_id"]
                dup["email"] = f"{_slug(stem)}@gmail.com"
            else:
                dup["company"] = dup["legal_name"] = name.lower()
                dup["email"], dup["vat_id"] = original["email"].upper(), original["vat_id"]
            self.dup_of[dup["id"]] = original["id"]
            customers.append(dup)
        self.messy["duplicate_customers"] = [("customers", d) for d in self.dup_of]

        profiles: list[str] = []
        for index, _ in enumerate(customers):
            roll = rng.random()
            if index < 2:  # the two nameless ones stay active so their orders matter
                profiles.append("active")
            else:
                profiles.append("lapsed" if roll < 0.25 else "new" if roll < 0.32 else "active")
        for customer, profile in zip(customers, profiles, strict=True):
            pay_days = rng.choice([5, 10, 20, 30, 30, 45, 60])
            for at in self.order_dates(customer, profile):
                order = self.order(customer, at)
                self.out["orders"].append(order)
                self.fulfil(order, customer, pay_days)
            customer["updated_at"] = iso(
                self.clamp(
                    self.moment(parse_iso(customer["created_at"]), self.now - timedelta(days=1))
                )
            )
        self.out["customers"] = customers

        # messy cases on fixed positions, after everything else is drawn
        first, second = customers[0], customers[1]
        first["company"] = ""
        first["legal_name"] = ""
        del second["company"]
        self.messy["missing_company"] = [("customers", first["id"]), ("customers", second["id"])]
        orders = self.out["orders"]
        orders[5]["order_date"] = "31/02/2025"
        self.messy["bad_order_date"] = [("orders", orders[5]["id"])]
        orders[9]["amount_total"] = "12,50 EUR"
        self.messy["bad_amount"] = [("orders", orders[9]["id"])]
        payment = self.out["payments"][3]
        del payment["currency"]
        self.messy["payment_missing_currency"] = [("payments", payment["id"])]
        orphan = self.order(customers[-4], self.now - timedelta(days=20, hours=3))
        orphan["customer_id"] = ORPHAN_CUSTOMER_ID
        orphan["state"] = "confirmed"
        orphan["updated_at"] = iso(self.now - timedelta(days=19))
        orders.append(orphan)
        self.messy["orphan_order"] = [("orders", orphan["id"])]
        return self.out
