"""The ERP's own receivable as a check on concord's open balance, and the gate before a push.

Where the ERP offers it (Tryton's party ``receivable``, NAV's ``Balance_LCY``) the canonical
customer carries what the ERP itself says the customer owes. For every such source record whose
source also has invoices, concord's open balance of that record's invoices, in the ERP's currency
(each invoice and allocation at its own rate, as the ERP books them), is compared with it; the
build-360 report lists the records that differ and the totals. Records of a source without
invoices take their open balance from the ERP, so they are counted as ``taken_from_erp``, not
checked. The push stage holds the push when the total difference, in the base currency, is above
``push_gate.receivable_tolerance`` (``--push-anyway`` overrides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from concord.config import PipelineConfig
from concord.customer360.fx import FxTable
from concord.customer360.metrics import CENT, CustomerTotals
from concord.store import tables as t

LISTED = 50  # differences listed in the report, largest first


@dataclass(slots=True)
class RecordCheck:
    """One source record: concord's open balance against the ERP's, and the difference."""

    concord_id: str
    record: str
    currency: str
    concord: Decimal
    erp: Decimal
    difference_base: Decimal | None  # None: no rate to the base currency

    @property
    def difference(self) -> Decimal:
        """Concord minus the ERP, in the ERP's currency."""
        return self.concord - self.erp

    def as_dict(self) -> dict[str, Any]:
        """The record as the report lists it."""
        return {
            "concord_id": self.concord_id,
            "record": self.record,
            "currency": self.currency,
            "concord_open": str(self.concord),
            "erp_receivable": str(self.erp),
            "difference": str(self.difference),
        }


@dataclass
class ReceivableCheck:
    """Every checked record of a run, summed: what the report and the push gate read."""

    base_currency: str
    checked: int = 0
    matching: int = 0
    taken_from_erp: int = 0
    unconverted: int = 0
    concord_total: Decimal = Decimal(0)
    erp_total: Decimal = Decimal(0)
    differences: list[RecordCheck] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        """Concord's total open balance minus the ERP's, in the base currency."""
        return self.concord_total - self.erp_total

    def as_dict(self) -> dict[str, Any]:
        """The summary the build-360 report keeps (largest differences first)."""
        listed = sorted(
            self.differences, key=lambda d: (-abs(d.difference_base or d.difference), d.record)
        )
        return {
            "base_currency": self.base_currency,
            "checked": self.checked,
            "matching": self.matching,
            "differing": len(self.differences),
            "taken_from_erp": self.taken_from_erp,
            "unconverted": self.unconverted,
            "concord_total": str(self.concord_total),
            "erp_total": str(self.erp_total),
            "difference": str(self.difference),
            "differences": [d.as_dict() for d in listed[:LISTED]],
        }


def check_records(
    gid: str, a: CustomerTotals, fx: FxTable, base: str, today: date, out: ReceivableCheck
) -> tuple[Decimal | None, Decimal | None]:
    """Check one golden customer's records; its ERP receivable and difference (base)."""
    erp_sum: Decimal | None = None
    diff_sum: Decimal | None = None
    for ref in sorted(a.records):
        record = a.records[ref]
        if record.erp_receivable is None:
            continue
        currency = record.erp_currency or base
        erp_base = fx.convert(record.erp_receivable, currency, base, today, record.source)
        if erp_base is None:
            out.unconverted += 1
            continue
        erp_sum = (erp_sum or Decimal(0)) + erp_base.amount
        if not record.has_invoices:
            out.taken_from_erp += 1
            continue
        if record.unconverted:
            out.unconverted += 1
            continue
        diff = record.open_erp - record.erp_receivable
        diff_base = fx.convert(diff, currency, base, today, record.source)
        out.checked += 1
        out.concord_total += record.open_base
        out.erp_total += erp_base.amount
        diff_sum = (diff_sum or Decimal(0)) + (diff_base.amount if diff_base else Decimal(0))
        if diff.quantize(CENT) == 0:
            out.matching += 1
        else:
            out.differences.append(
                RecordCheck(
                    gid,
                    ref,
                    currency,
                    record.open_erp,
                    record.erp_receivable,
                    diff_base.amount if diff_base else None,
                )
            )
    return erp_sum, diff_sum


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """Whether the push may go: the totals over the stored 360 rows and the tolerance."""

    held: bool
    difference: Decimal
    tolerance: Decimal | None
    customers: int

    @property
    def message(self) -> str:
        """What the run report and the CLI say when the push is held."""
        return (
            f"push held: concord's open balance differs from the ERPs' own receivable by "
            f"{self.difference} in total over {self.customers} customers, more than "
            f"push_gate.receivable_tolerance {self.tolerance}; see the build_360 report's "
            "receivable check, fix the cause or push with --push-anyway"
        )


def gate(conn: Connection, config: PipelineConfig) -> GateVerdict:
    """The receivable gate over the stored 360 rows (what would be pushed)."""
    tolerance = config.push_gate.receivable_tolerance
    total = Decimal(0)
    customers = 0
    # the one figure, extracted in SQL from the narrow daily rows: parsing every whole row
    # took seconds a night
    diff = t.customer360_daily.c.data["erp_receivable_difference"].as_string()
    for (value,) in conn.execution_options(yield_per=5000).execute(
        select(diff).where(diff.is_not(None))
    ):
        customers += 1
        total += Decimal(str(value))
    held = tolerance is not None and abs(total) > tolerance
    return GateVerdict(held, total, tolerance, customers)
