"""Seed what the customer-360 test needs on a copy of the Tryton database, through proteus.

Run with the Python of the separate Tryton venv, never imported by the test process:
``python tryton_360_script.py CONFIG DATABASE seed_360``. Kept apart from ``tryton_script.py``
so the cached template (keyed by that script) is not rebuilt for it. On top of the template it
sets the company's time zone (ahead of UTC, see ``TIMEZONE``), adds USD with dated rates and a
dated EUR rate (Tryton's rates are relative to an arbitrary base, so the company currency's own
rate matters), a quotation, a draft and a cancelled sale, a USD sale and a USD invoice dated in
the past, an invoice due today, and payments through the invoice "Pay" wizard (full, two
partial, one in USD), a draft ``account.payment`` and an invoice due twelve days ago. Prints one
JSON object (what it made) on its last stdout line.
"""
# mypy: ignore-errors
# ruff: noqa: N806

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from decimal import Decimal

# A zone ahead of UTC: the template numbered its invoices with the server's (UTC) date, and
# Tryton numbers invoices in date order, so a company date behind it (as New York's is from
# midnight to five UTC) could not post an invoice dated its today.
TIMEZONE = "Pacific/Auckland"


def seed_360(config_file: str, database: str) -> dict:
    from proteus import Model, config
    from trytond.modules.account.tests.tools import get_accounts

    cfg = config.set_trytond(database=database, config_file=config_file)
    Company = Model.get("company.company")
    (company,) = Company.find([])
    company.timezone = TIMEZONE
    company.save()
    Date = Model.get("ir.date")
    today = Date.today(cfg.context)  # the company's date
    Currency = Model.get("currency.currency")
    Rate = Model.get("currency.currency.rate")
    Party = Model.get("party.party")
    Sale = Model.get("sale.sale")
    Invoice = Model.get("account.invoice")
    Payment = Model.get("account.payment")
    (eur,) = Currency.find([("code", "=", "EUR")])
    usd = Currency(name="US Dollar", code="USD", symbol="$", rounding=Decimal("0.01"), digits=2)
    usd.save()
    for currency, days_ago, rate in ((usd, 60, "1.0"), (usd, 5, "1.25"), (eur, 20, "2.5")):
        Rate(currency=currency, date=today - dt.timedelta(days=days_ago), rate=Decimal(rate)).save()

    (term,) = Model.get("account.invoice.payment_term").find([], limit=1)
    products = {p.code: p for p in Model.get("product.product").find([])}
    parties = {p.name: p for p in Party.find([])}

    def sale(party: str, *, currency=None, sale_date=None, quantity: float = 2.0):
        s = Sale()
        s.party = parties[party]
        s.payment_term = term
        s.invoice_method = "order"
        if currency is not None:
            s.currency = currency
        if sale_date is not None:
            s.sale_date = sale_date
        line = s.lines.new()
        line.product = products["P-100"]
        line.quantity = quantity
        s.save()
        return s

    quotation = sale("Cobalt Industries Ltd", quantity=40.0)
    quotation.click("quote")
    draft = sale("Delta Foods BV", quantity=30.0)
    cancelled = sale("Echo Systems SpA", quantity=20.0)
    cancelled.click("quote")
    cancelled.click("cancel")
    usd_sale = sale("Foxtrot Retail SA", currency=usd, sale_date=today - dt.timedelta(days=8))
    usd_sale.click("quote")
    usd_sale.click("confirm")
    usd_sale.reload()
    for invoice in usd_sale.invoices:
        invoice.click("post")  # invoice_date today: due today with the immediate payment term

    def invoice(party: str, product: str, quantity: float, price: str, **fields):
        inv = Invoice(type="out", party=parties[party], payment_term=term, **fields)
        line = inv.lines.new()
        line.product = products[product]
        line.quantity = quantity
        line.unit_price = Decimal(price)
        inv.save()
        return inv

    # Invoice numbers follow invoice dates: the earliest date a new invoice may have.
    latest = max(i.invoice_date for i in Invoice.find([("number", "!=", None)]))
    ten_days_ago = max(latest, today - dt.timedelta(days=10))
    past = invoice("Gamma Tools Oy", "P-200", 1.0, "100", currency=usd, invoice_date=ten_days_ago)
    past.click("post")
    due_today = invoice("Hotel Kilo AG", "P-300", 3.0, "7.25")
    due_today.click("post")
    overdue = invoice(
        "Delta Foods BV", "P-200", 2.0, "40", payment_term_date=today - dt.timedelta(days=12)
    )
    # Tryton warns of a due date in the past; an answered warning (res.user.warning) lets it post.
    key = hashlib.md5(f"account.invoice,{overdue.id}".encode(), usedforsecurity=False).hexdigest()
    Model.get("res.user.warning")(
        user=cfg.user, name=f"{key}.invoice_payment_term", always=False
    ).save()
    overdue.click("post")

    accounts = get_accounts()
    (cash_journal,) = Model.get("account.journal").find([("type", "=", "cash")])
    method = Model.get("account.invoice.payment.method")(
        name="Cash",
        journal=cash_journal,
        credit_account=accounts["cash"],
        debit_account=accounts["cash"],
    )
    method.save()

    def pay(invoice, amount=None, days_ago: int = 0):
        wizard = invoice.click("pay")
        if amount is not None:
            wizard.form.amount = Decimal(amount)
        wizard.form.payment_method = method
        wizard.form.date = today - dt.timedelta(days=days_ago)
        wizard.execute("choice")
        if wizard.state != "end":  # less than the amount to pay: a partial payment
            wizard.form.type = "partial"
            wizard.execute("pay")
        invoice.reload()
        return invoice

    paid_by_payment = {p.line.move_origin.id for p in Payment.find([]) if p.line is not None}
    posted = Invoice.find([("type", "=", "out"), ("state", "=", "posted")], order=[("id", "ASC")])
    unpaid = [
        i
        for i in posted
        if i.id not in paid_by_payment
        and i.currency == eur
        and i.id not in (due_today.id, overdue.id)
    ]
    full = pay(unpaid[0], days_ago=2)
    partial = pay(unpaid[1], "10", days_ago=3)
    partial = pay(partial, "5", days_ago=1)
    usd_partial = pay(past, "50")
    pay(overdue, "5")

    (journal,) = Model.get("account.payment.journal").find([])
    (line_to_pay,) = unpaid[2].lines_to_pay
    Payment(
        company=company,
        journal=journal,
        kind="receivable",
        party=unpaid[2].party,
        line=line_to_pay,
        amount=Decimal("20"),
    ).save()  # stays draft: not money received

    return {
        "today": today.isoformat(),
        "timezone": TIMEZONE,
        "quotation": quotation.id,
        "quotation_party": quotation.party.id,
        "draft": draft.id,
        "cancelled": cancelled.id,
        "usd_sale": usd_sale.id,
        "past_usd_invoice": past.id,
        "past_usd_invoice_date": past.invoice_date.isoformat(),
        "due_today": due_today.id,
        "overdue": overdue.id,
        "paid_in_full": full.id,
        "paid_in_full_state": full.state,
        "partly_paid": partial.id,
        "usd_partly_paid": usd_partial.id,
        "company_party": company.party.id,
    }


def main() -> None:
    config_file, database, command = sys.argv[1:4]
    result = {"seed_360": seed_360}[command](config_file, database)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
