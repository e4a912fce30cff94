"""The rental fee BillableSource: each contract period's fee once it is due, escalated then prorated."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _

from core.db import db
from core.extension_points import BillableLine
from modules.rentals import periods as rules
from modules.rentals.models import Contract

# Draft contracts bill nothing yet; suspended ones wait and catch up when reactivated (docs/invoicing.md).
BILLED_STATES = ("active", "ended")


class RentalFeeSource:
    """Fees of the customer's contracts: `advance` once a period has started by as_of, `arrears` once it has ended."""

    name = "rentals"

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        contracts = db.session.scalars(_billed_contracts(Contract.customer_id == customer_id, as_of))
        texts = _Texts()
        return [line for contract in contracts for line in fee_lines(contract, as_of, texts)]


def _billed_contracts(customer: sa.ColumnElement[bool], as_of: dt.date) -> sa.Select:
    return (
        sa.select(Contract)
        .where(customer, Contract.state.in_(BILLED_STATES), Contract.fee > 0)
        .where(Contract.start_date <= as_of)
        .order_by(Contract.id)
    )


class _Texts:
    """The texts of one `billable_lines` call in the current language, each formatted once."""

    def __init__(self) -> None:
        self.unit = _("period")
        self._dates: dict[dt.date, str] = {}

    def date(self, day: dt.date) -> str:
        if day not in self._dates:
            self._dates[day] = format_date(day, "short")
        return self._dates[day]


def fee_lines(contract: Contract, as_of: dt.date, texts: _Texts | None = None) -> list[BillableLine]:
    """The fee line of every period of `contract` due by `as_of`, billed or not (invoicing skips billed refs)."""
    texts = texts or _Texts()
    lines = []
    for period in rules.periods(contract.start_date, contract.period_months, contract.end_date, until=as_of):
        if not rules.fee_due(period, contract.fee_timing, as_of):
            continue
        amount = rules.period_fee(contract.fee, contract.escalation_percent, contract.start_date, period)
        if amount <= 0:
            continue
        lines.append(
            BillableLine(
                source="rentals",
                source_ref=f"fee:{contract.id}:{period.index}",
                description=_(
                    "Rental fee, contract %(number)s, %(start)s - %(end)s",
                    number=contract.number,
                    start=texts.date(period.start),
                    end=texts.date(period.end),
                ),
                quantity=Decimal(1),
                unit_price=amount,
                vat_rate=contract.vat_rate,
                vat_code=contract.vat_code,
                kind="fee",
                contract_id=contract.id,
                period_start=period.start,
                period_end=period.end,
                unit=texts.unit,
                extra={
                    "active_days": period.active_days,
                    "period_days": period.period_days,
                    # Printed on the invoice (invoicing's PDF reads it from the line's extra data).
                    **({"invoice_notes": contract.invoice_notes} if contract.invoice_notes else {}),
                },
            )
        )
    return lines
