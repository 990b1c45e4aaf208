"""The canonical customer model every source is mapped into and every target is mapped from.

Amounts are ``Decimal`` and times are timezone-aware UTC, so money totals reconcile exactly and
"late" or "overdue" never depends on the server's local zone. Each row carries a ``SourceRef``
back to the ERP record it came from (lineage). The models are the contract: mapping files are
checked against their fields on load, and ``concord schema`` exports their JSON Schema.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    DRAFT = "draft"
    OPEN = "open"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    CLOSED = "closed"
    CANCELLED = "cancelled"


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
    """Where an invoice is."""

    DRAFT = "draft"
    POSTED = "posted"
    PAID = "paid"
    CANCELLED = "cancelled"


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
    """Where a payment is."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    REFUNDED = "refunded"


class Payment(CanonicalModel):
    """A payment received from a customer, against an invoice when known."""

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
    """A golden-record value and the source record that supplied it (survivorship lineage)."""

    value: Any
    source: str


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
    orders_count: int = 0
    lifetime_revenue: Money = Decimal(0)
    revenue_12m: Money = Decimal(0)
    average_order_value: Money = Decimal(0)
    first_order_at: UtcDatetime | None = None
    last_order_at: UtcDatetime | None = None
    days_since_last_order: int | None = None
    open_orders: int = 0
    shipments_in_transit: int = 0
    shipments_late_90d: int = 0
    invoiced_total: Money = Decimal(0)
    paid_total: Money = Decimal(0)
    open_balance: Money = Decimal(0)
    overdue_balance: Money = Decimal(0)
    average_days_to_pay: float | None = None
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    value_tier: ValueTier = ValueTier.C
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT
    churn_risk: float | None = Field(default=None, description="1 - P(alive)")
    p_alive: float | None = None
    base_currency: CurrencyCode = "EUR"
    updated_at: UtcDatetime
    content_hash: str = ""


ENTITY_MODELS: dict[str, type[CanonicalModel]] = {
    "customers": Customer,
    "orders": Order,
    "shipments": Shipment,
    "invoices": Invoice,
    "payments": Payment,
}
"""Canonical entity name -> model. Mapping files name one of these keys as their target."""
