"""Supplier bills (fatture passive) registered in the purchases journal.

A bill is checked whole before anything is written. Registering it gives it the next protocol number of its
registration year (gapless: `core.sequences`, so a refused or rolled-back registration gives the number back) and posts
its entry: each line debits its expense account for the net (plus its VAT when that VAT is not deductible), the
deductible VAT is debited to VAT receivable per rate (with the taxable amount on the line), and the supplier's payable
is credited for the total with the bill and its due date, for the payments to match. Registration dates never go
back within a year, so protocol order is date order, as the purchases register needs.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _

from core import clock
from core.db import db
from core.models import Partner
from core.sequences import next_number
from core.validation import Checker, ValidationError
from modules.accounting import ledger
from modules.accounting import settings as accounting_settings
from modules.accounting.models import Account, SupplierBill, SupplierBillLine

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
AMOUNT_LIMIT = Decimal(10) ** 10
MAX_LINES = 200
EXPENSE_TYPES = ("expense", "asset")  # an asset account takes a purchase that is capitalised
PROTOCOL_SEQUENCE = "accounting.purchases_protocol"


def line_vat(net: Decimal, rate: Decimal) -> Decimal:
    return (net * rate / 100).quantize(CENT, ROUND_HALF_UP)


def _accounts(codes: set[str]) -> dict[str, Account]:
    if not codes:
        return {}
    return {account.code: account for account in db.session.scalars(sa.select(Account).where(Account.code.in_(codes)))}


def _check_lines(check: Checker, lines: Sequence[Mapping[str, Any]]) -> list[SupplierBillLine]:
    if not lines:
        check.fail("lines", _("A bill needs at least one line."))
        return []
    if len(lines) > MAX_LINES:
        check.fail("lines", _("At most %(max)d lines.", max=MAX_LINES))
        return []
    accounts = _accounts({str(line.get("account") or "").strip() for line in lines if isinstance(line, Mapping)})
    checked = []
    for position, line in enumerate(lines):
        field = f"lines.{position}"
        if not isinstance(line, Mapping):
            check.fail(field, _("Not a bill line."))
            continue
        description = check.text(f"{field}.description", line.get("description"), 200, required=True)
        code = str(line.get("account") or "").strip()
        account = accounts.get(code)
        if not code:
            check.fail(f"{field}.account", _("This field is required."))
        elif account is None:
            check.fail(f"{field}.account", _("No account has the code %(code)s.", code=code[:20]))
        elif not account.postable or not account.active or account.type not in EXPENSE_TYPES:
            message = _("%(account)s is not an active cost or asset account that takes entries.", account=account)
            check.fail(f"{field}.account", message)
        net = check.decimal(f"{field}.net", line.get("net"), 2, AMOUNT_LIMIT)
        if net is not None and net <= 0:
            check.fail(f"{field}.net", _("Must be more than zero."))
        rate = check.decimal(f"{field}.vat_rate", line.get("vat_rate"), 2, Decimal(100), maximum=Decimal(100))
        deductible = check.boolean(f"{field}.deductible", line.get("deductible"), default=True)
        vat = None
        if net is not None and rate is not None:
            vat = line_vat(net, rate)
            given = check.decimal(f"{field}.vat", line.get("vat"), 2, AMOUNT_LIMIT, required=False)
            if given is not None and abs(given - vat) > CENT:
                message = _("The VAT of %(net)s at %(rate)s percent is %(vat)s.", net=net, rate=rate, vat=vat)
                check.fail(f"{field}.vat", message)
            elif given is not None:
                vat = given  # the supplier's rounding, within a cent
        if f"{field}.description" in check or account is None or vat is None:
            continue
        checked.append(
            SupplierBillLine(
                description=description, account=account, net=net, vat_rate=rate, vat=vat, deductible=deductible
            )
        )
    return checked


def _check_supplier(check: Checker, partner_id: Any) -> Partner | None:
    ident = check.integer("partner_id", partner_id, 1, 2**31 - 1)
    if ident is None:
        return None
    partner = db.session.get(Partner, ident)
    if partner is None:
        check.fail("partner_id", _("No such supplier."))
    elif not partner.is_supplier:
        check.fail("partner_id", _("%(name)s is not marked as a supplier.", name=partner.name))
    return partner


def create_bill(
    partner_id: Any,
    number: Any,
    date: Any,
    lines: Sequence[Mapping[str, Any]],
    *,
    registered_on: Any = None,
    due_date: Any = None,
    user_id: int | None = None,
) -> SupplierBill:
    """Register a supplier's bill and post its entry in the purchases journal, in the caller's transaction.

    `lines`: mappings with description, account (code), net, vat_rate, optional vat (the supplier's, within a cent
    of the computed one) and deductible (default true). ValidationError names each bad field, nothing is written.
    """
    check = Checker()
    partner = _check_supplier(check, partner_id)
    bill_number = check.text("number", number, 40, required=True)
    bill_date = check.date("date", date)
    registered = check.date("registered_on", registered_on, required=False) or clock.today()
    due = check.date("due_date", due_date, required=False)
    if bill_date is not None:
        if bill_date > clock.today():
            check.fail("date", _("The bill's date must not be in the future."))
        if registered < bill_date:
            check.fail("registered_on", _("A bill is registered on or after its date."))
        if due is not None and due < bill_date:
            check.fail("due_date", _("The due date must not be before the bill's date."))
    if registered > clock.today():
        check.fail("registered_on", _("The registration date must not be in the future."))
    checked = _check_lines(check, lines)
    check.raise_if_any()
    _check_not_registered(partner, bill_number, bill_date)
    _check_registration_order(registered)

    bill = SupplierBill(
        partner_id=partner.id,
        number=bill_number,
        date=bill_date,
        year=bill_date.year,
        registered_on=registered,
        due_date=due,
        lines=checked,
        net_total=sum((line.net for line in checked), ZERO),
        vat_total=sum((line.vat for line in checked), ZERO),
        created_by=user_id,
    )
    bill.total = bill.net_total + bill.vat_total
    bill.protocol = next_number(PROTOCOL_SEQUENCE, registered.year)
    db.session.add(bill)
    db.session.flush()
    entry = ledger.post_entry(
        "ACQ",
        registered,
        entry_lines(bill, partner),
        reference=bill_number,
        source="bill",
        source_id=bill.id,
        memo=_("Bill %(number)s of %(supplier)s", number=bill_number, supplier=partner.name),
        user_id=user_id,
    )
    bill.entry_id = entry.id
    db.session.flush()
    return bill


def _check_not_registered(partner: Partner, number: str, date: dt.date) -> None:
    existing = db.session.scalar(
        sa.select(SupplierBill).where(
            SupplierBill.partner_id == partner.id, SupplierBill.number == number, SupplierBill.year == date.year
        )
    )
    if existing is not None:
        message = _(
            "Bill %(number)s of %(year)d from this supplier is registered already (protocol %(protocol)s).",
            number=number,
            year=date.year,
            protocol=f"{existing.protocol}/{existing.registered_on.year}",
        )
        raise ValidationError({"number": message})


def _check_registration_order(registered: dt.date) -> None:
    last = db.session.scalar(
        sa.select(sa.func.max(SupplierBill.registered_on)).where(
            SupplierBill.registered_on >= registered.replace(month=1, day=1),
            SupplierBill.registered_on <= registered.replace(month=12, day=31),
        )
    )
    if last is not None and registered < last:
        message = _("The registration date must not be before %(date)s, the last bill's.", date=format_date(last))
        raise ValidationError({"registered_on": message})


def entry_lines(bill: SupplierBill, partner: Partner) -> list[ledger.LineSpec]:
    """Debit each line's account (net, and non-deductible VAT), debit deductible VAT per rate, credit the payable."""
    label = _("Bill %(number)s", number=bill.number)
    specs = []
    vat_by_rate: dict[Decimal, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for line in bill.lines:
        cost = line.net + (ZERO if line.deductible else line.vat)
        specs.append(ledger.LineSpec(account=line.account, debit=cost, label=line.description[:200]))
        if line.deductible and line.vat:
            vat_by_rate[line.vat_rate][0] += line.net
            vat_by_rate[line.vat_rate][1] += line.vat
    receivable = accounting_settings.vat_receivable_account()
    for rate, (base, vat) in sorted(vat_by_rate.items()):
        vat_label = _("VAT %(rate)s percent, %(label)s", rate=f"{rate.normalize():f}", label=label)
        specs.append(ledger.LineSpec(account=receivable, debit=vat, label=vat_label, vat_rate=rate, vat_base=base))
    specs.append(
        ledger.LineSpec(
            account=accounting_settings.payable_account(),
            credit=bill.total,
            partner_id=partner.id,
            label=label,
            bill_id=bill.id,
            due_date=bill.due_date,
        )
    )
    return specs
