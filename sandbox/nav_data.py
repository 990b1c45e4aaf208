"""Deterministic data for the SOAP ERP sandbox, shaped like Dynamics NAV page services.

`NavDataset.generate(seed, customers, nav_only)` takes the REST sandbox's customers
(`ErpDataset.generate(seed=7, customers=60)`), re-enters a share of them NAV style — numeric "No"
("10000", "10010", ...), names in other case or spelling, e-mails in upper case, VAT numbers with
spaces and without the country prefix — so identity resolution can merge them with the REST ERP's
records (`shared` maps NAV No -> REST customer id), and adds NAV-only customers. Each customer gets
sales orders with lines (page SalesOrder, shaped as the standard page 42 with its part page 46: no
header totals, every line carrying the document's Total_Amount_Excl_VAT / Total_VAT_Amount /
Total_Amount_Incl_VAT, Quantity_Shipped per line, no modification date, blank dates as
0001-01-01), customer ledger entries (page CustLedgerEntry: invoices, and payments applied to
them) and a cash receipt journal (page CashReceiptJournal, as the standard page 255: lines keyed
by template, batch and line number, customer payments with negative amounts next to G/L lines for
bank charges). Records are plain dicts of strings (decimals as "123.45", dates as "YYYY-MM-DD"),
kept per page in primary-key order with an opaque NAV-like "Key" that ReadMultiple's bookmarkKey
refers to. Currency "" means the local currency (EUR), as in NAV.
A customer's Balance_LCY is the sum of its ledger entries' remaining amounts in the local currency
(a foreign-currency entry at the sandbox's fixed rate, ``LCY_PER_UNIT``), as NAV's FlowField is.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stdnum.iso7064 import mod_11_10

from sandbox.erp_data import DEFAULT_NOW, ErpDataset

Record = dict[str, Any]
PAGES: tuple[str, ...] = ("Customer", "SalesOrder", "CustLedgerEntry", "CashReceiptJournal")
BLANK_DATE = "0001-01-01"
"""What NAV sends for a date field nobody filled in."""
LOCAL_CURRENCY = "EUR"
CENT = Decimal("0.01")
LCY_PER_UNIT = {"USD": Decimal("0.92"), "GBP": Decimal("1.17")}
"""The sandbox's exchange rates: local currency per unit (the demo config's ``fx_rates``)."""

_STEMS = (
    "Nordlicht",
    "Kranich",
    "Elbufer",
    "Sonnenhof",
    "Brückner",
    "Tannenberg",
    "Seewind",
    "Falkenstein",
    "Lindenau",
    "Rheinfeld",
    "Mosel",
    "Auerbach",
)
_TRADES = ("Maschinenbau", "Handel", "Logistik", "Elektro", "Bau", "Druck", "Metall", "Holz")
_FORMS = ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.")
_CITIES = (
    ("Hamburg", "20095"),
    ("Bremen", "28195"),
    ("Hannover", "30159"),
    ("Leipzig", "04109"),
    ("Dresden", "01067"),
    ("Kassel", "34117"),
)
_ITEMS = (
    ("1000", "Bicycle", Decimal("649.00")),
    ("1100", "Front Wheel", Decimal("89.50")),
    ("1200", "Back Wheel", Decimal("92.00")),
    ("1300", "Chain Assy", Decimal("24.90")),
    ("1400", "Mudguard front", Decimal("12.40")),
    ("1500", "Lamp", Decimal("18.75")),
    ("70000", "Side Panel", Decimal("310.00")),
    ("70010", "Base", Decimal("145.00")),
)
_PAYMENT_METHODS = ("BANK", "CASH", "CHECK", "GIRO")


def nav_key(page: str, number: str) -> str:
    """An opaque NAV-style record key (NAV's keys are base64 blobs with a table prefix)."""
    blob = base64.b64encode(f"{page}:{number}".encode()).decode()
    return f"12;{blob};"


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _spaced_vat(vat: str, country: str) -> str:
    """NAV users type VAT numbers their way: without the country prefix, in groups of three."""
    digits = vat[2:] if vat[:2].isalpha() else vat
    if country == "DE":
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    return digits


def _respell(name: str, index: int) -> str:
    """Another spelling of a company name, as a second ERP would hold it."""
    if index % 3 == 0:
        return name.upper()
    if index % 3 == 1:
        return (
            name.replace("GmbH", "G.m.b.H.").replace("Ltd", "Limited").replace("SARL", "S.A.R.L.")
        )
    return name.lower().title()


@dataclass
class NavDataset:
    """Records per NAV page in primary-key order; `shared` maps NAV customer No -> REST id."""

    pages: dict[str, list[Record]] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    now: date = field(default_factory=lambda: DEFAULT_NOW.date())

    @classmethod
    def generate(
        cls, seed: int = 7, customers: int = 60, nav_only: int = 20, orders_per_customer: int = 4
    ) -> NavDataset:
        """Build the dataset; the same arguments always give the same records."""
        rng = random.Random(seed * 1000 + 44)
        rest = ErpDataset.generate(seed=seed, customers=customers)
        data = cls(pages={page: [] for page in PAGES})
        rows: list[Record] = []
        candidates = [
            c
            for c in rest.iter_all("customers")
            if c.get("company") and c.get("type") == "company" and c["id"] not in rest.duplicate_of
        ]
        candidates.sort(key=lambda c: c["id"])
        for index, source in enumerate(candidates[::3]):
            number = str(10000 + 10 * len(rows))
            vat = source.get("vat_id")
            row = data._customer(
                number,
                name=_respell(source["company"], index),
                street=source["billing_address"]["street"],
                city=source["billing_address"]["city"],
                postcode=source["billing_address"]["zip"],
                country=source["country"],
                phone=source.get("phone") or "",
                # share the VAT id where there is one, else the e-mail (upper case, as typed)
                email=source["email"].upper() if index % 2 or not vat else "",
                vat=_spaced_vat(vat, source["country"]) if vat else "",
                currency="" if source["currency"] == LOCAL_CURRENCY else source["currency"],
                modified=rng.randint(5, 700),
            )
            data.shared[number] = source["id"]
            rows.append(row)
        for _ in range(nav_only):
            number = str(10000 + 10 * len(rows))
            stem = f"{rng.choice(_STEMS)} {rng.choice(_TRADES)}"
            city, postcode = rng.choice(_CITIES)
            body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
            slug = stem.lower().replace(" ", "-").replace("ü", "ue")
            rows.append(
                data._customer(
                    number,
                    name=f"{stem} {rng.choice(_FORMS)} {number[:-1]}",
                    street=f"Industriestr. {rng.randint(1, 90)}",
                    city=city,
                    postcode=postcode,
                    country="DE",
                    phone=f"+49 {rng.randint(30, 899)} {rng.randint(100000, 999999)}",
                    email=f"einkauf@{slug}-{number}.de",
                    vat=f"DE{body}{mod_11_10.calc_check_digit(body)}",
                    currency="",
                    modified=rng.randint(5, 700),
                )
            )
        data.pages["Customer"] = rows
        data._orders_and_ledger(rng, orders_per_customer)
        return data

    def _customer(
        self,
        number: str,
        *,
        name: str,
        street: str,
        city: str,
        postcode: str,
        country: str,
        phone: str,
        email: str,
        vat: str,
        currency: str,
        modified: int,
    ) -> Record:
        return {
            "Key": nav_key("Customer", number),
            "No": number,
            "Name": name,
            "Address": street,
            "City": city,
            "Post_Code": postcode,
            "Country_Region_Code": country,
            "Phone_No": phone,
            "E_Mail": email,
            "VAT_Registration_No": vat,
            "Currency_Code": currency,
            "Blocked": "_blank_",
            "Credit_Limit_LCY": "0.00",
            "Balance_LCY": "0.00",
            "Last_Date_Modified": (self.now - timedelta(days=modified)).isoformat(),
        }

    def _orders_and_ledger(self, rng: random.Random, per_customer: int) -> None:
        orders: list[Record] = []
        entries: list[Record] = []
        for customer in self.pages["Customer"]:
            for _ in range(rng.randint(0, per_customer * 2)):
                number = f"S-ORD{101001 + len(orders)}"
                ordered = self.now - timedelta(days=rng.randint(1, 720))
                age = (self.now - ordered).days
                status = "Released" if age > 14 else rng.choice(["Open", "Released"])
                shipped_share = 1 if age > 14 else (rng.random() < 0.4 and status == "Released")
                lines: list[Record] = []
                for n, (item, description, price) in enumerate(
                    rng.sample(_ITEMS, rng.randint(1, 3)), start=1
                ):
                    qty = Decimal(rng.choice([1, 1, 2, 4, 10]))
                    shipped = qty if shipped_share else Decimal(0)
                    invoiced = qty if age > 14 else Decimal(0)
                    lines.append(
                        {
                            "Key": nav_key("SalesLine", f"{number}:{n * 10000}"),
                            "Type": "Item",
                            "No": item,
                            "Description": description,
                            "Quantity": str(qty),
                            "Unit_Price": _money(price),
                            "Line_Amount": _money(price * qty),
                            "Qty_to_Ship": str(qty - shipped),
                            "Quantity_Shipped": str(shipped),
                            "Qty_to_Invoice": str(qty - invoiced),
                            "Quantity_Invoiced": str(invoiced),
                            "Shipment_Date": (ordered + timedelta(days=3)).isoformat(),
                            "Document_No": number,
                            "Line_No": n * 10000,
                        }
                    )
                net = sum((Decimal(line["Line_Amount"]) for line in lines), Decimal(0))
                gross = (net * Decimal("1.19")).quantize(CENT, rounding=ROUND_HALF_UP)
                for line in lines:  # NAV shows the document's totals on every line
                    line["Total_Amount_Excl_VAT"] = _money(net)
                    line["Total_VAT_Amount"] = _money(gross - net)
                    line["Total_Amount_Incl_VAT"] = _money(gross)
                promised = ordered + timedelta(days=7) if rng.random() < 0.3 else None
                orders.append(
                    {
                        "Key": nav_key("SalesOrder", number),
                        "No": number,
                        "Sell_to_Customer_No": customer["No"],
                        "Sell_to_Customer_Name": customer["Name"],
                        "Posting_Date": ordered.isoformat(),
                        "Order_Date": ordered.isoformat(),
                        "Document_Date": ordered.isoformat(),
                        "Requested_Delivery_Date": BLANK_DATE,
                        "Promised_Delivery_Date": promised.isoformat() if promised else BLANK_DATE,
                        "Status": status,
                        "Currency_Code": customer["Currency_Code"],
                        "Prices_Including_VAT": False,
                        "Due_Date": (ordered + timedelta(days=30)).isoformat(),
                        "Shipment_Date": (ordered + timedelta(days=3)).isoformat(),
                        "SalesLines": {"Sales_Order_Line": lines},
                    }
                )
                if age > 14:
                    invoice = f"S-INV{102001 + len(entries)}"
                    posted = ordered + timedelta(days=7)
                    paid = age > 45 and rng.random() < 0.85
                    entries.append(
                        self._entry(
                            len(entries),
                            posted,
                            "Invoice",
                            invoice,
                            customer,
                            gross,
                            Decimal(0) if paid else gross,
                            "",
                            "",
                        )
                    )
                    if paid:
                        entries.append(
                            self._entry(
                                len(entries),
                                posted + timedelta(days=rng.randint(5, 40)),
                                "Payment",
                                f"PMT{103001 + len(entries)}",
                                customer,
                                -gross,
                                Decimal(0),
                                invoice,
                                rng.choice(_PAYMENT_METHODS),
                            )
                        )
        orders.sort(key=lambda r: r["No"])
        self.pages["SalesOrder"] = orders
        self.pages["CustLedgerEntry"] = entries  # Entry_No order
        self.pages["CashReceiptJournal"] = self._cash_receipts(rng, entries)
        balance: dict[str, Decimal] = {}
        for entry in entries:
            rate = LCY_PER_UNIT.get(entry["Currency_Code"], Decimal(1))
            remaining = (Decimal(entry["Remaining_Amount"]) * rate).quantize(CENT, ROUND_HALF_UP)
            number = entry["Customer_No"]
            balance[number] = balance.get(number, Decimal(0)) + remaining
        for customer in self.pages["Customer"]:
            customer["Balance_LCY"] = _money(balance.get(customer["No"], Decimal(0)))

    def _entry(
        self,
        index: int,
        posted: date,
        doc_type: str,
        doc_no: str,
        customer: Record,
        amount: Decimal,
        remaining: Decimal,
        applies_to: str,
        method: str,
    ) -> Record:
        entry_no = index + 1
        return {
            "Key": nav_key("CustLedgerEntry", str(entry_no)),
            "Entry_No": entry_no,
            "Posting_Date": min(posted, self.now).isoformat(),
            "Document_Type": doc_type,
            "Document_No": doc_no,
            "Customer_No": customer["No"],
            "Description": f"{doc_type} {doc_no}",
            "Currency_Code": customer["Currency_Code"],
            "Amount": _money(amount),
            "Remaining_Amount": _money(remaining),
            "Open": remaining != 0,
            "Applies_to_Doc_No": applies_to,
            "Payment_Method_Code": method,
            "Last_Date_Modified": min(posted, self.now).isoformat(),
        }

    def _cash_receipts(self, rng: random.Random, entries: list[Record]) -> list[Record]:
        """Unposted receipts for some open invoices, each with a G/L line for the bank charge."""
        lines: list[Record] = []
        open_invoices = [e for e in entries if e["Document_Type"] == "Invoice" and e["Open"]]
        for invoice in open_invoices[::4]:
            number = 10000 * (len(lines) + 1)
            document = f"G{2001 + len(lines):05d}"
            amount = Decimal(invoice["Remaining_Amount"])
            posting = self.now.isoformat()
            lines.append(
                self._journal_line(
                    number,
                    posting,
                    document,
                    "Customer",
                    invoice["Customer_No"],
                    -amount,
                    invoice["Currency_Code"],
                    invoice["Document_No"],
                    rng.choice(_PAYMENT_METHODS),
                )
            )
            lines.append(
                self._journal_line(
                    number + 10000,
                    posting,
                    document,
                    "G_L_Account",
                    "8610",
                    Decimal("2.50"),
                    "",
                    "",
                    "",
                )
            )
        return lines

    def _journal_line(
        self,
        line_no: int,
        posting: str,
        document: str,
        account_type: str,
        account: str,
        amount: Decimal,
        currency: str,
        applies_to: str,
        method: str,
    ) -> Record:
        return {
            "Key": nav_key("GenJournalLine", f"CASHRCPT:GENERAL:{line_no}"),
            "Journal_Template_Name": "CASHRCPT",
            "Journal_Batch_Name": "GENERAL",
            "Line_No": line_no,
            "Posting_Date": posting,
            "Document_Type": "Payment" if account_type == "Customer" else "_blank_",
            "Document_No": document,
            "Account_Type": account_type,
            "Account_No": account,
            "Description": f"Payment {applies_to}" if applies_to else "Bank charges",
            "Currency_Code": currency,
            "Amount": _money(amount),
            "Amount_LCY": _money(amount * LCY_PER_UNIT.get(currency, Decimal(1))),
            "Bal_Account_Type": "Bank_Account",
            "Bal_Account_No": "WWB-OPERATING",
            "Applies_to_Doc_Type": "Invoice" if applies_to else "_blank_",
            "Applies_to_Doc_No": applies_to,
            "Payment_Method_Code": method,
        }

    def count(self, page: str) -> int:
        return len(self.pages[page])
