"""The canonical customer model every source is mapped into and every target is mapped from.

Amounts are ``Decimal`` and times are timezone-aware UTC, so money totals reconcile exactly and
"late" or "overdue" never depends on the server's local zone. Each row carries a ``SourceRef``
back to the ERP record it came from (lineage). The models are the contract: mapping files are
checked against their fields on load, and ``concord schema`` exports their JSON Schema.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from concord.utc import as_utc


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return as_utc(value)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Money = Annotated[Decimal, Field(max_digits=20, decimal_places=6)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class CanonicalModel(BaseModel):
    """What every canonical row shares: unknown fields refused, text stripped."""

    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=True)


def record_key(source: str, source_id: str) -> str:
    """The one way concord names a source record: ``source:id`` (links, overrides, the CLI)."""
    return f"{source}:{source_id}"


def split_record_key(key: str) -> tuple[str, str]:
    """``(source, id)`` of a record key; the id may itself contain colons."""
    source, _, source_id = key.partition(":")
    return source, source_id


class SourceRef(CanonicalModel):
    """Where a canonical row came from: system (source name), entity and the id there."""

    system: str
    entity: str
    id: str

    @property
    def key(self) -> str:
        """The record key of the row (``source:id``)."""
        return record_key(self.system, self.id)


class Address(CanonicalModel):
    """A postal address (country as ISO 3166 alpha-2)."""

    line: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: CountryCode | None = None


class RecordState(StrEnum):
    """A record the ERP no longer holds as live: archived there, or deleted (a tombstone)."""

    ARCHIVED = "archived"
    DELETED = "deleted"


class Identifier(CanonicalModel):
    """An identifier of the customer: its type and the value as the source holds it.

    Types: ``vat``, ``us_ein``, ``gb_crn``, ``duns``, ``lei``, ``de_idnr``...

    Identity validates it per type with python-stdnum and keeps an invalid one, marked so: two
    different values of one type are negative evidence whether they validate or not.
    """

    type: str = Field(min_length=1, max_length=40)
    value: str = Field(min_length=1)


RelationKind = Literal["bill_to", "parent", "branch", "related"]


class Relation(CanonicalModel):
    """An explicit ERP relationship to another account: related, never the same customer.

    NAV's ``Bill_to_Customer_No``, a parent company, a branch's head office.

    ``ref`` names the other record: ``source:id``, or just its id in the same source.
    """

    kind: RelationKind
    ref: str = Field(min_length=1)


class Customer(CanonicalModel):
    """A customer as one source holds it, before identity resolution."""

    ref: SourceRef
    name: str = Field(min_length=1)
    legal_name: str | None = None
    tax_id: str | None = None
    country: CountryCode | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    addresses: list[Address] = Field(default_factory=list)
    currency: CurrencyCode | None = None
    crossrefs: list[str] = Field(
        default_factory=list,
        description=(
            "Keys 'system:entity:id' of records in other systems known to be this customer."
        ),
    )
    is_person: bool = False
    identifiers: list[Identifier] = Field(default_factory=list)
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    relations: list[Relation] = Field(default_factory=list)
    number: str | None = Field(
        default=None, description="The ERP's own customer number (Tryton code, NAV No.)."
    )
    erp_receivable: Money | None = Field(
        default=None,
        description="What the ERP itself says the customer owes (Tryton receivable, NAV "
        "Balance_LCY), in erp_receivable_currency.",
    )
    erp_receivable_currency: CurrencyCode | None = Field(
        default=None, description="The ERP's company (local) currency the receivable is in."
    )
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    record_state: RecordState | None = Field(
        default=None,
        description="None: a live customer; archived in the ERP (Tryton: inactive party) or "
        "deleted (an id sweep found it gone). Either is no longer a customer: identity "
        "resolution leaves it out and the push retires it in the CRM.",
    )


class OrderStatus(StrEnum):
    """Where an order is in its life; what each status counts as is in ``ORDER_MEANING``.

    ``draft``: being entered, nothing agreed. ``quote``: offered to the customer, not accepted.
    ``open``: an order document not yet released for fulfilment (entered, awaiting approval).
    ``confirmed``: agreed and released. ``shipped``: delivered, not yet closed. ``closed``:
    done. ``cancelled``: never counts.
    """

    DRAFT = "draft"
    QUOTE = "quote"
    OPEN = "open"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class StatusMeaning(StrEnum):
    """What a document in a status counts as in the 360."""

    NOTHING = "nothing"
    QUOTE = "quote"
    OPEN_WORK = "open_work"
    REVENUE_OPEN = "revenue_open"
    REVENUE = "revenue"

    @property
    def is_revenue(self) -> bool:
        """Counted in revenue, order count, first/last order."""
        return self in (StatusMeaning.REVENUE, StatusMeaning.REVENUE_OPEN)

    @property
    def is_open_work(self) -> bool:
        """Counted in open orders (work still to do for the customer)."""
        return self in (StatusMeaning.OPEN_WORK, StatusMeaning.REVENUE_OPEN)


ORDER_MEANING: dict[OrderStatus, StatusMeaning] = {
    OrderStatus.DRAFT: StatusMeaning.NOTHING,
    OrderStatus.QUOTE: StatusMeaning.QUOTE,
    OrderStatus.OPEN: StatusMeaning.OPEN_WORK,
    OrderStatus.CONFIRMED: StatusMeaning.REVENUE_OPEN,
    OrderStatus.SHIPPED: StatusMeaning.REVENUE,
    OrderStatus.CLOSED: StatusMeaning.REVENUE,
    OrderStatus.CANCELLED: StatusMeaning.NOTHING,
}
"""Order status -> what it counts as: quote and draft never revenue, cancelled never anything."""


class OrderLine(CanonicalModel):
    """One line of an order."""

    sku: str | None = None
    description: str | None = None
    quantity: Decimal
    unit_price: Money
    net_amount: Money | None = None


class Order(CanonicalModel):
    """A sales order with its totals (net, tax, gross) in its own currency."""

    ref: SourceRef
    number: str
    customer_id: str = Field(description="Source id of the customer in the same system.")
    ordered_at: UtcDatetime
    status: OrderStatus
    currency: CurrencyCode
    net_total: Money
    tax_total: Money = Decimal(0)
    gross_total: Money
    lines: list[OrderLine] = Field(default_factory=list)
    updated_at: UtcDatetime | None = None


class ShipmentStatus(StrEnum):
    """Where a shipment is."""

    PENDING = "pending"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class Shipment(CanonicalModel):
    """A shipment of an order, with the promised and actual delivery times."""

    ref: SourceRef
    number: str
    order_id: str | None = None
    customer_id: str
    shipped_at: UtcDatetime | None = None
    delivered_at: UtcDatetime | None = None
    promised_at: UtcDatetime | None = None
    carrier: str | None = None
    tracking: str | None = None
    status: ShipmentStatus
    updated_at: UtcDatetime | None = None


class InvoiceStatus(StrEnum):
    """Where an invoice is: only ``posted`` and ``paid`` invoices are billed (``BILLED``)."""

    DRAFT = "draft"
    POSTED = "posted"
    PAID = "paid"
    CANCELLED = "cancelled"


BILLED: frozenset[InvoiceStatus] = frozenset({InvoiceStatus.POSTED, InvoiceStatus.PAID})
"""Invoice statuses that count as invoiced; draft and cancelled invoices count as nothing."""


class Invoice(CanonicalModel):
    """An invoice with its total and the amount still open."""

    ref: SourceRef
    number: str
    order_id: str | None = None
    customer_id: str
    issued_at: UtcDatetime
    due_at: UtcDatetime | None = None
    currency: CurrencyCode
    total: Money
    open_amount: Money
    status: InvoiceStatus
    updated_at: UtcDatetime | None = None


class PaymentStatus(StrEnum):
    """Where a payment is: only ``completed`` money counts as paid (``ALLOCATED``)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUNDED = "refunded"


ALLOCATED: frozenset[PaymentStatus] = frozenset({PaymentStatus.COMPLETED})
"""Payment statuses whose money counts as received (allocated to its invoice, if any)."""


class Payment(CanonicalModel):
    """Money received from a customer and allocated to one invoice (``invoice_id``) when known.

    Whatever the ERP calls it (Tryton ``account.payment`` or a reconciled cash-journal line,
    a NAV customer ledger entry of type Payment), one row is one allocation: the amount in the
    payment's currency on its date.
    """

    ref: SourceRef
    reference: str
    customer_id: str
    invoice_id: str | None = None
    paid_at: UtcDatetime
    currency: CurrencyCode
    amount: Money
    method: str | None = None
    status: PaymentStatus
    updated_at: UtcDatetime | None = None


class ExchangeRate(CanonicalModel):
    """A dated exchange rate: ``units`` of ``currency`` are worth ``rate`` of ``base``.

    The rate applies from ``valid_from`` until the currency's next rate of the same source.
    ``base`` is None when the ERP quotes every currency against one unnamed common base, as
    Tryton does (``currency.currency.rate``: a currency's rate is its units per common unit, so
    ``units`` is Tryton's rate and ``rate`` is 1); then only rates of the same source can be
    combined. NAV's Currency Exchange Rates give ``Exchange_Rate_Amount`` units worth
    ``Relational_Exch_Rate_Amount`` of the local currency.
    """

    ref: SourceRef
    currency: CurrencyCode
    valid_from: date
    units: Annotated[Decimal, Field(gt=0)] = Decimal(1)
    rate: Annotated[Decimal, Field(gt=0)]
    base: CurrencyCode | None = None
    updated_at: UtcDatetime | None = None


class ValueTier(StrEnum):
    """Pareto value tier: A makes 80% of revenue, B the next 15%, C the rest."""

    A = "A"
    B = "B"
    C = "C"


class LifecycleStage(StrEnum):
    """Lifecycle stage from the first and last order."""

    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"
    PROSPECT = "prospect"


class SourcedValue(CanonicalModel):
    """A golden-record value, the source record that supplied it and the rule that chose it."""

    value: Any
    source: str
    rule: str | None = None


class CustomerNumber(CanonicalModel):
    """An ERP customer number of one of the golden customer's records."""

    source: str
    number: str
    record: str = Field(description="The record key (source:id) that carries the number.")
    label: str = Field(default="", description="'source number', as pushed to CRMs")

    @model_validator(mode="after")
    def _label(self) -> CustomerNumber:
        if not self.label:
            self.label = f"{self.source} {self.number}"
        return self


class BalanceGap(CanonicalModel):
    """Part of ``invoiced - paid - open`` and why it is there (base currency)."""

    reason: str
    amount: Money


class FxUse(CanonicalModel):
    """Which rates converted a customer's documents in one currency to the base currency."""

    currency: CurrencyCode
    source: str
    rates: list[str] = Field(description="'valid_from: units currency = rate base' as applied")
    documents: int


class ChurnExplanation(CanonicalModel):
    """How a churn figure was made: model, its parameters and the customer's history."""

    model: str
    params: dict[str, float] = Field(default_factory=dict)
    x: int = Field(description="repeat purchases (orders after the first)")
    t_x: float = Field(description="time of the last purchase since the first, in periods")
    T: float = Field(description="time since the first purchase, in periods")
    period_days: int = 7
    reason: str = ""


class Customer360(CanonicalModel):
    """One golden customer: best values with their sources, and the 360 figures."""

    concord_id: str
    name: SourcedValue
    email: SourcedValue | None = None
    phone: SourcedValue | None = None
    address: SourcedValue | None = None
    tax_id: SourcedValue | None = None
    country: str | None = None
    is_person: bool = False
    source_ids: list[str]
    customer_numbers: list[CustomerNumber] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list, description="every record's e-mails")
    phones: list[str] = Field(default_factory=list, description="every record's phones")
    as_of: date | None = Field(
        default=None, description="Business date every figure is as of (company timezone)."
    )
    timezone: str = "UTC"
    orders_count: int = 0
    lifetime_revenue: Money = Decimal(0)
    revenue_12m: Money = Decimal(0)
    average_order_value: Money = Decimal(0)
    first_order_at: UtcDatetime | None = None
    last_order_at: UtcDatetime | None = None
    days_since_last_order: int | None = None
    open_orders: int = 0
    open_quotes: int = 0
    shipments_in_transit: int = 0
    shipments_late_90d: int = 0
    invoiced_total: Money = Decimal(0)
    paid_total: Money = Decimal(0)
    open_balance: Money = Decimal(0)
    overdue_balance: Money = Decimal(0)
    average_days_to_pay: float | None = None
    unallocated_paid: Money = Decimal(0)
    balance_gaps: list[BalanceGap] = Field(
        default_factory=list, description="why invoiced != paid + open, with the amounts"
    )
    open_balance_basis: str = Field(
        default="documents",
        description="documents (invoices), erp_receivable (the ERP's own figure) or mixed",
    )
    erp_receivable: Money | None = None
    erp_receivable_difference: Money | None = Field(
        default=None, description="open balance - ERP receivable over the checked records"
    )
    fx: list[FxUse] = Field(default_factory=list)
    unconverted: dict[str, int] = Field(
        default_factory=dict, description="documents left out per currency: no rate"
    )
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    value_tier: ValueTier = ValueTier.C
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT
    churn_risk: float | None = Field(default=None, description="1 - P(alive)")
    p_alive: float | None = None
    churn: ChurnExplanation | None = None
    base_currency: CurrencyCode = "EUR"
    updated_at: UtcDatetime
    content_hash: str = ""


ENTITY_MODELS: dict[str, type[CanonicalModel]] = {
    "customers": Customer,
    "orders": Order,
    "shipments": Shipment,
    "invoices": Invoice,
    "payments": Payment,
    "exchange_rates": ExchangeRate,
}
"""Canonical entity name -> model. Mapping files name one of these keys as their target."""
