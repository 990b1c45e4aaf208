"""Seed, change and total a Tryton 8.2 database through Tryton's own Python API (proteus).

Run with the Python of the separate Tryton venv, never imported by the test process:
``python tryton_script.py CONFIG DATABASE seed|change|totals``. Every command prints one JSON
object on its last stdout line: ``seed`` the REST application key, ``change`` which records it
touched, ``totals`` counts and money totals computed by Tryton itself.
"""
# mypy: ignore-errors
# ruff: noqa: N806

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal


def connect(config_file: str, database: str):
    from proteus import config

    return config.set_trytond(database=database, config_file=config_file)


CUSTOMERS = [
    # (name, vat code, e-mail, city)
    ("Acme Trading GmbH", "DE123456788", "info@acme-trading.de", "Berlin"),
    ("ACME Trading GmbH.", "DE123456788", "sales@acme-trading.de", "Berlin"),  # near-duplicate
    ("Bolt & Nut SARL", None, "contact@boltnut.fr", "Lyon"),
    ("Bolt and Nut SARL", None, "contact@boltnut.fr", "Lyon"),  # near-duplicate
    ("Cobalt Industries Ltd", None, "ap@cobalt.co.uk", "Leeds"),
    ("Delta Foods BV", None, "orders@deltafoods.nl", "Utrecht"),
    ("Echo Systems SpA", None, "amministrazione@echo.it", "Milano"),
    ("Foxtrot Retail SA", None, "compras@foxtrot.es", "Madrid"),
    ("Gamma Tools Oy", None, "info@gammatools.fi", "Espoo"),
    ("Hotel Kilo AG", None, "buchhaltung@hotelkilo.ch", "Bern"),
]


def seed(database_config: str, database: str) -> dict:
    from proteus import Model, Wizard
    from trytond.modules.account.tests.tools import (
        create_chart,
        create_fiscalyear,
        create_tax,
        get_accounts,
    )
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company

    cfg = connect(database_config, database)
    create_company(currency="EUR")
    create_chart()
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear())
    fiscalyear.click("create_period")
    accounts = get_accounts()

    tax = create_tax(Decimal(".20"))
    tax.save()
    category = Model.get("product.category")(name="Goods")
    category.accounting = True
    category.account_expense = accounts["expense"]
    category.account_revenue = accounts["revenue"]
    category.customer_taxes.append(tax)
    category.save()

    (unit,) = Model.get("product.uom").find([("name", "=", "Unit")])
    products = []
    for code, name, price in (
        ("P-100", "Widget", "12.50"),
        ("P-200", "Gadget", "40.00"),
        ("P-300", "Gizmo", "7.25"),
    ):
        template = Model.get("product.template")()
        template.name = name
        template.code = code
        template.default_uom = unit
        template.type = "goods"
        template.salable = True
        template.list_price = Decimal(price)
        template.account_category = category
        template.save()
        products.append(template.products[0])

    term = create_payment_term()
    term.save()

    (storage,) = Model.get("stock.location").find([("code", "=", "STO")])
    inventory = Model.get("stock.inventory")()
    inventory.location = storage
    for product in products:
        line = inventory.lines.new(product=product)
        line.quantity = 10_000.0
        line.expected_quantity = 0.0
    inventory.click("confirm")

    Party = Model.get("party.party")
    parties = []
    for name, vat, email, city in CUSTOMERS:
        party = Party(name=name)
        party.contact_mechanisms.new(type="email", value=email)
        address = party.addresses[0] if party.addresses else party.addresses.new()
        address.street = f"{len(parties) + 1} Main Street"
        address.city = city
        if vat:
            party.identifiers.new(type="eu_vat", code=vat)
        party.save()
        parties.append(party)

    payment_journal = Model.get("account.payment.journal")(name="Manual", process_method="manual")
    payment_journal.save()

    Sale = Model.get("sale.sale")
    sales = []
    for i in range(16):
        sale = Sale()
        sale.party = parties[i % len(parties)]
        sale.payment_term = term
        sale.invoice_method = "order"
        sale.sale_date = dt.date.today() - dt.timedelta(days=30 - i)
        for j in range(1 + i % 3):
            line = sale.lines.new()
            line.product = products[(i + j) % len(products)]
            line.quantity = float(1 + (i * 7 + j) % 5)
        sale.click("quote")
        sale.click("confirm")
        sales.append(sale)

    shipped = 0
    for i, sale in enumerate(sales):
        sale.reload()
        for invoice in sale.invoices:
            invoice.click("post")
        if i % 4 != 3:  # three in four shipped
            for shipment in sale.shipments:
                shipment.click("assign_try")
                shipment.click("pick")
                shipment.click("pack")
                shipment.click("do")
                shipped += 1

    Payment = Model.get("account.payment")
    paid = 0
    Invoice = Model.get("account.invoice")
    for i, invoice in enumerate(Invoice.find([("type", "=", "out")], order=[("id", "ASC")])):
        if i % 2:
            continue
        (line_to_pay,) = invoice.lines_to_pay
        pay = Wizard("account.move.line.pay", [line_to_pay])
        pay.execute("next_")
        pay.execute("next_")
        (payment,) = Payment.find([("state", "=", "draft")])
        payment.reference = f"PAY-{invoice.number}"
        payment.click("submit")
        payment.click("process_wizard")
        payment.click("succeed")
        paid += 1

    application = Model.get("res.user.application")()
    application.user = Model.get("res.user")(cfg.user)
    application.application = "rest"
    application.state = "validated"
    application.save()
    return {"key": application.key, "shipped": shipped, "paid": paid}


def change(database_config: str, database: str) -> dict:
    """Touch a known set of records: rename two parties and create one new party."""
    from proteus import Model

    connect(database_config, database)
    Party = Model.get("party.party")
    changed = []
    for party in Party.find([("name", "in", ["Delta Foods BV", "Gamma Tools Oy"])]):
        party.name = party.name + " (renamed)"
        party.save()
        changed.append(str(party.id))
    new = Party(name="Juliett Logistics GmbH")
    new.save()
    return {"changed": sorted(changed), "new": [str(new.id)]}


def totals(database_config: str, database: str) -> dict:
    """Counts and money totals as Tryton computes them, for the test to compare with concord's.

    Invoices are read with ``with_payment: false`` (as the tryton profile reads them): their
    amount to pay is what the ledger holds open, not reduced by payment orders.
    """
    from proteus import Model

    cfg = connect(database_config, database)
    company_parties = [c.party.id for c in Model.get("company.company").find()]
    parties = Model.get("party.party").find([("id", "not in", company_parties)])
    sales = Model.get("sale.sale").find()
    with cfg.set_context(with_payment=False):
        invoices = Model.get("account.invoice").find([("type", "=", "out")])
        invoices_open = sum((i.amount_to_pay for i in invoices), Decimal(0))
    shipments = Model.get("stock.shipment.out").find()
    payments = Model.get("account.payment").find([("kind", "=", "receivable")])
    return {
        "parties": len(parties),
        "sales": len(sales),
        "sales_total": str(sum((s.total_amount for s in sales), Decimal(0))),
        "invoices": len(invoices),
        "invoices_total": str(sum((i.total_amount for i in invoices), Decimal(0))),
        "invoices_open": str(invoices_open),
        "shipments": len(shipments),
        "shipments_done": sum(1 for s in shipments if s.state == "done"),
        "payments": len(payments),
        "payments_total": str(sum((p.amount for p in payments), Decimal(0))),
    }


def main() -> None:
    config_file, database, command = sys.argv[1:4]
    result = {"seed": seed, "change": change, "totals": totals}[command](config_file, database)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
