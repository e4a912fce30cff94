"""VAT: the sales and purchases registers (registri IVA) and the periodic settlement (liquidazione IVA).

The sales register lists every posted invoice and credit note issued in the period, with the VAT summary invoicing
printed on it (`invoicing.services.vat_summary`), credit notes negative: its totals equal, to the cent, the sum of the
documents' summaries. A document of a split payment customer (scissione dei pagamenti) is flagged: its VAT is on the
register but the customer pays it to the State, so the settlement leaves it out. Which documents those are is the
document's own flag (Invoice.split_payment, set when it was posted, as its e-invoice and sales entry say), not the
customer's current setting.

The purchases register lists the supplier bills registered in the period (by registration date, in protocol order),
per rate the taxable amount, the VAT and the part of it that is deductible.

A settlement covers a month or a quarter (setting `accounting.vat_periodicity`): VAT on sales (except split payment)
minus deductible VAT on purchases minus the credit carried from the previous settlement; a quarterly balance due
bears 1 percent interest. Its entry, in the miscellaneous journal on the period's last day, closes VAT payable and VAT
receivable into Erario c/IVA (and the interest into its expense account), so Erario c/IVA holds what is due or the
credit carried forward.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.settings import get_setting
from core.validation import MAX_YEAR, MIN_YEAR, fail
from modules.accounting import chart, ledger
from modules.accounting import settings as accounting_settings
from modules.accounting.models import SupplierBill, VatSettlement
from modules.invoicing.models import Invoice
from modules.invoicing.services import vat_summary

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
QUARTERLY_INTEREST_PERCENT = Decimal(1)
INTEREST_ACCOUNT_SETTING = "accounting.vat_interest_account"
DEFAULT_INTEREST_ACCOUNT = chart.VAT_INTEREST
REGISTER_KINDS = ("sales", "purchases")


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of `month`'s month."""
    first = month.replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def parse_month(text: str | None, field_name: str = "month") -> dt.date:
    """`2026-11` as the first day of that month; ValidationError naming `field_name` otherwise."""
    value = (text or "").strip()
    if not value:
        fail(field_name, _("This field is required."))
    try:
        day = dt.date.fromisoformat(value + "-01") if len(value) == 7 else None
    except ValueError:
        day = None
    if day is None or not MIN_YEAR <= day.year <= MAX_YEAR:
        fail(field_name, _("Not a month (YYYY-MM): %(value)s", value=value[:20]))
    return day


@dataclass(frozen=True)
class RateLine:
    rate: Decimal
    taxable: Decimal
    vat: Decimal
    deductible: Decimal = ZERO  # purchases: the part of `vat` that is deducted


def _totals(lines: Iterable[RateLine]) -> list[RateLine]:
    taxable: dict[Decimal, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for line in lines:
        sums = taxable[line.rate]
        sums[0] += line.taxable
        sums[1] += line.vat
        sums[2] += line.deductible
    return [RateLine(rate, *sums) for rate, sums in sorted(taxable.items())]


class _RateTotals:
    """A register row's totals over its lines per rate."""

    rates: list[RateLine]

    @property
    def taxable(self) -> Decimal:
        return sum((line.taxable for line in self.rates), ZERO)

    @property
    def vat(self) -> Decimal:
        return sum((line.vat for line in self.rates), ZERO)

    @property
    def total(self) -> Decimal:
        return self.taxable + self.vat


@dataclass
class SalesRow(_RateTotals):
    invoice: Invoice
    rates: list[RateLine]
    split_payment: bool

    @property
    def sign(self) -> int:
        return -1 if self.invoice.type == "credit_note" else 1


@dataclass
class PurchasesRow(_RateTotals):
    bill: SupplierBill
    rates: list[RateLine]

    @property
    def deductible(self) -> Decimal:
        return sum((line.deductible for line in self.rates), ZERO)


@dataclass
class Register:
    kind: str  # sales | purchases
    start: dt.date
    end: dt.date
    rows: list = field(default_factory=list)

    @property
    def totals(self) -> list[RateLine]:
        """Per rate, over every row: the taxable amount, the VAT and (purchases) the deductible VAT."""
        return _totals(line for row in self.rows for line in row.rates)

    @property
    def taxable(self) -> Decimal:
        return sum((row.taxable for row in self.rows), ZERO)

    @property
    def vat(self) -> Decimal:
        return sum((row.vat for row in self.rows), ZERO)

    @property
    def total(self) -> Decimal:
        return self.taxable + self.vat

    @property
    def split_payment_vat(self) -> Decimal:
        """Sales: the VAT of the split payment documents (paid to the State by the customer)."""
        return sum((row.vat for row in self.rows if getattr(row, "split_payment", False)), ZERO)

    @property
    def deductible(self) -> Decimal:
        """Purchases: the VAT deducted."""
        return sum((row.deductible for row in self.rows if isinstance(row, PurchasesRow)), ZERO)


def sales_register(start: dt.date, end: dt.date | None = None) -> Register:
    """Every posted invoice and credit note issued from `start` to `end` (default: the end of `start`'s month), in
    type and number order, with its VAT summary (credit notes negative)."""
    if end is None:
        start, end = month_bounds(start)
    documents = db.session.scalars(
        sa.select(Invoice)
        .where(Invoice.state == "posted", Invoice.issue_date >= start, Invoice.issue_date <= end)
        .options(selectinload(Invoice.lines), selectinload(Invoice.customer))
        .order_by(Invoice.type.desc(), Invoice.year, Invoice.sequence_number)
    ).all()
    register = Register("sales", start, end)
    for document in documents:
        sign = -1 if document.type == "credit_note" else 1
        rates = [RateLine(rate, sign * taxable, sign * vat) for rate, taxable, vat in vat_summary(document.lines)]
        register.rows.append(SalesRow(document, rates, document.split_payment))
    return register


def bill_rates(bill: SupplierBill) -> list[RateLine]:
    """A bill's lines per VAT rate: taxable amount, VAT and deductible VAT."""
    return _totals(
        RateLine(line.vat_rate, line.net, line.vat, line.vat if line.deductible else ZERO) for line in bill.lines
    )


def purchases_register(start: dt.date, end: dt.date | None = None) -> Register:
    """Every supplier bill registered from `start` to `end` (default: the end of `start`'s month), in protocol
    order, per rate."""
    if end is None:
        start, end = month_bounds(start)
    bills = db.session.scalars(
        sa.select(SupplierBill)
        .where(SupplierBill.registered_on >= start, SupplierBill.registered_on <= end)
        .options(selectinload(SupplierBill.lines), selectinload(SupplierBill.partner))
        .order_by(SupplierBill.registered_on, SupplierBill.protocol, SupplierBill.id)
    ).all()
    return Register("purchases", start, end, [PurchasesRow(bill, bill_rates(bill)) for bill in bills])


def register(kind: str, month: dt.date) -> Register:
    if kind not in REGISTER_KINDS:
        fail("kind", _("Choose one of: %(choices)s", choices=", ".join(REGISTER_KINDS)))
    return sales_register(month) if kind == "sales" else purchases_register(month)


# The settlement


def periodicity() -> str:
    return accounting_settings.vat_periodicity()


def period_bounds(day: dt.date, every: str | None = None) -> tuple[dt.date, dt.date]:
    """The settlement period (month, or quarter when quarterly) containing `day`."""
    every = every or periodicity()
    if every == "quarterly":
        first = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        last_month = first.month + 2
        return first, first.replace(month=last_month, day=calendar.monthrange(first.year, last_month)[1])
    return month_bounds(day)


def period_label(start: dt.date, end: dt.date) -> str:
    """The period in words, in the user's language: "November 2026", or "Q4 2026" for a quarter."""
    if start.month == end.month:
        return format_date(start, "LLLL yyyy")
    return _("Q%(quarter)d %(year)d", quarter=(start.month - 1) // 3 + 1, year=start.year)


@dataclass(frozen=True)
class SettlementFigures:
    period_start: dt.date
    period_end: dt.date
    sales_vat: Decimal  # VAT on sales, split payment excluded
    split_payment_vat: Decimal  # on the register, paid to the State by the customers
    purchases_vat: Decimal  # deductible VAT on purchases
    previous_credit: Decimal  # the credit carried from the previous settlement (positive)
    interest: Decimal
    quarterly: bool

    @property
    def balance(self) -> Decimal:
        """Positive: due to the State; negative: a credit carried to the next period."""
        return self.sales_vat - self.purchases_vat - self.previous_credit + self.interest


def previous_settlement(period_start: dt.date) -> VatSettlement | None:
    return db.session.scalar(
        sa.select(VatSettlement)
        .where(VatSettlement.period_end < period_start)
        .order_by(VatSettlement.period_end.desc())
        .limit(1)
    )


def settlement_figures(day: dt.date, every: str | None = None) -> SettlementFigures:
    """The figures of the settlement of the period containing `day` as the books stand (nothing is written)."""
    every = every or periodicity()
    start, end = period_bounds(day, every)
    sales = sales_register(start, end)
    purchases = purchases_register(start, end)
    previous = previous_settlement(start)
    previous_credit = -previous.balance if previous is not None and previous.balance < 0 else ZERO
    sales_vat = sales.vat - sales.split_payment_vat
    before_interest = sales_vat - purchases.deductible - previous_credit
    interest = ZERO
    if every == "quarterly" and before_interest > 0:
        interest = (before_interest * QUARTERLY_INTEREST_PERCENT / 100).quantize(CENT, ROUND_HALF_UP)
    return SettlementFigures(
        start,
        end,
        sales_vat=sales_vat,
        split_payment_vat=sales.split_payment_vat,
        purchases_vat=purchases.deductible,
        previous_credit=previous_credit,
        interest=interest,
        quarterly=every == "quarterly",
    )


def interest_account_code() -> str:
    return str(get_setting(INTEREST_ACCOUNT_SETTING, DEFAULT_INTEREST_ACCOUNT))


def _side(account, amount: Decimal, label: str) -> ledger.LineSpec:
    if amount >= 0:
        return ledger.LineSpec(account=account, debit=amount, label=label)
    return ledger.LineSpec(account=account, credit=-amount, label=label)


def settlement_lines(figures: SettlementFigures, label: str) -> list[ledger.LineSpec]:
    """Close VAT payable and VAT receivable into Erario c/IVA; the interest to its expense account."""
    lines = []
    if figures.sales_vat:
        lines.append(_side(accounting_settings.vat_payable_account(), figures.sales_vat, label))
    if figures.purchases_vat:
        lines.append(_side(accounting_settings.vat_receivable_account(), -figures.purchases_vat, label))
    if figures.interest:
        lines.append(_side(ledger.get_account(interest_account_code()), figures.interest, label))
    to_state = figures.sales_vat - figures.purchases_vat + figures.interest
    if to_state:
        lines.append(_side(accounting_settings.vat_settlement_account(), -to_state, label))
    return lines


def settle(day: dt.date, user_id: int | None = None) -> VatSettlement:
    """Settle the period containing `day`: store its figures and post its entry. The period must be over, not settled
    yet, and follow the last settlement; ValidationError field "period" otherwise."""
    every = periodicity()
    start, end = period_bounds(day, every)
    if end >= clock.today():
        fail("period", _("The period ends on %(date)s: settle it once it is over.", date=format_date(end)))
    if db.session.scalar(sa.select(VatSettlement.id).where(VatSettlement.period_end >= start).limit(1)):
        fail("period", _("This period, or a later one, is settled already."))
    previous = previous_settlement(start)
    if previous is not None and previous.period_end != start - dt.timedelta(days=1):
        following = previous.period_end + dt.timedelta(days=1)
        message = _("Settle the period starting on %(date)s first.", date=format_date(following))
        fail("period", message)
    figures = settlement_figures(start, every)
    settlement = VatSettlement(
        period_start=start,
        period_end=end,
        sales_vat=figures.sales_vat,
        purchases_vat=figures.purchases_vat,
        previous_credit=figures.previous_credit,
        interest=figures.interest,
        balance=figures.balance,
        created_by=user_id,
    )
    db.session.add(settlement)
    db.session.flush()
    label = _("VAT settlement %(period)s", period=period_label(start, end))
    lines = settlement_lines(figures, label)
    if lines:
        entry = ledger.post_entry(
            "VAR", end, lines, reference=label, source="settlement", source_id=settlement.id, user_id=user_id
        )
        settlement.entry_id = entry.id
    db.session.flush()
    return settlement
