"""Changes a live Tryton 8.2 database the way its users do, for ``test_tryton_live_changes.py``.

Run with the Python of the Tryton venv: ``python tryton_live_script.py CONFIG DATABASE
command[:arg...]``; prints one JSON object on its last line. Commands: ``rename:<party>``,
``archive:<party>``, ``draft_sale:<party>`` (its id), ``delete_sale:<sale>``,
``pay:<invoice>:<amount>`` (the invoice's Pay wizard, a partial cash payment),
``state`` (active parties, sales, each customer invoice's amount to pay as the tryton
profile reads it: ``with_payment: false``, and the posted invoices the Pay wizard can pay 5 of).
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


def rename(party_id: str) -> dict:
    from proteus import Model

    party = Model.get("party.party")(int(party_id))
    party.name = party.name + " *"
    party.save()
    return {"name": party.name}


def archive(party_id: str) -> dict:
    from proteus import Model

    party = Model.get("party.party")(int(party_id))
    party.active = False
    party.save()
    return {"archived": party.id}


def draft_sale(party_id: str) -> dict:
    from proteus import Model

    sale = Model.get("sale.sale")()
    sale.party = Model.get("party.party")(int(party_id))
    (product,) = Model.get("product.product").find([("code", "=", "P-100")])
    line = sale.lines.new()
    line.product = product
    line.quantity = 1.0
    sale.save()
    return {"sale": sale.id}


def delete_sale(sale_id: str) -> dict:
    from proteus import Model

    Sale = Model.get("sale.sale")
    Sale.delete([Sale(int(sale_id))])
    return {"deleted": int(sale_id)}


def pay(invoice_id: str, amount: str) -> dict:
    from proteus import Model
    from trytond.modules.account.tests.tools import get_accounts

    Method = Model.get("account.invoice.payment.method")
    methods = Method.find([("name", "=", "Cash (live test)")])
    if methods:
        method = methods[0]
    else:
        accounts = get_accounts()
        (cash_journal,) = Model.get("account.journal").find([("type", "=", "cash")])
        method = Method(
            name="Cash (live test)",
            journal=cash_journal,
            credit_account=accounts["cash"],
            debit_account=accounts["cash"],
        )
        method.save()
    invoice = Model.get("account.invoice")(int(invoice_id))
    wizard = invoice.click("pay")
    wizard.form.amount = Decimal(amount)
    wizard.form.payment_method = method
    wizard.form.date = dt.date.today()
    wizard.execute("choice")
    if wizard.state != "end":
        wizard.form.type = "partial"
        wizard.execute("pay")
    return {"paid": int(invoice_id)}


def state(cfg) -> dict:
    from proteus import Model

    company_parties = [c.party.id for c in Model.get("company.company").find()]
    parties = Model.get("party.party").find([("id", "not in", company_parties)])
    with cfg.set_context(with_payment=False):
        invoices = Model.get("account.invoice").find([("type", "=", "out")])
        open_amounts = {str(i.id): str(i.amount_to_pay) for i in invoices}
    payable = sorted(
        str(i.id)
        for i in Model.get("account.invoice").find([("type", "=", "out")])
        if i.state == "posted" and i.amount_to_pay > 5
    )
    return {
        "payable": payable,
        "parties": {str(p.id): p.name for p in parties},
        "sales": sorted(str(s.id) for s in Model.get("sale.sale").find()),
        "open": open_amounts,
    }


def main() -> None:
    config_file, database, command = sys.argv[1:4]
    name, *args = command.split(":")
    cfg = connect(config_file, database)
    if name == "state":
        result = state(cfg)
    else:
        result = {
            "rename": rename,
            "archive": archive,
            "draft_sale": draft_sale,
            "delete_sale": delete_sale,
            "pay": pay,
        }[name](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
