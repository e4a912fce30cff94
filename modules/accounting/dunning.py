"""Dunning (solleciti): at each step (days after the due date, from settings) one email per customer, in its
language, listing all its overdue open invoices; a `DunningLetter` records each email sent.

An invoice counts as reminded at the step it had reached on the day of each letter that listed it, so no invoice is
reminded twice at the same step, and a customer gets a letter only when one of its invoices reached a new step.
Customers whose open items are all matched get nothing, nor customers whose unapplied payments or credit notes cover
what they owe; invoices being collected by SEPA direct debit are left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import Partner, PartnerContact
from core.outbox import queue_email
from modules.accounting import settings
from modules.accounting.models import DunningLetter
from modules.accounting.receivables import days_late
from modules.accounting.sepa import collecting_invoice_ids
from modules.invoicing.models import Invoice

log = logging.getLogger(__name__)
ZERO = Decimal("0.00")


def step_reached(due_date: dt.date, on: dt.date, steps: Sequence[int]) -> int:
    """How many dunning steps (days after due) an item due on `due_date` has reached on `on` (0: none yet)."""
    late = days_late(due_date, on)
    return sum(1 for days in sorted(steps) if late >= days)


@dataclass(frozen=True)
class DunnedItem:
    """An overdue invoice as the letter lists it."""

    invoice: Invoice
    due_date: dt.date
    residual: Decimal
    days_late: int
    step: int


def customer_recipients(partner: Partner) -> list[str]:
    """The customer's contacts who receive invoices, else its own email (as invoicing delivers invoices)."""
    contacts = db.session.scalars(
        sa.select(PartnerContact.email)
        .where(PartnerContact.partner_id == partner.id, PartnerContact.receives_invoices.is_(True))
        .order_by(PartnerContact.id)
    ).all()
    addresses = [address for address in contacts if address]
    if not addresses and partner.email:
        addresses = [partner.email]
    return list(dict.fromkeys(addresses))


def _reminded_steps(partner_ids: set[int], due_dates: dict[int, dt.date], steps: Sequence[int]) -> dict[int, int]:
    """For each invoice, the highest step at which a letter already listed it."""
    reminded: dict[int, int] = defaultdict(int)
    letters = db.session.scalars(sa.select(DunningLetter).where(DunningLetter.partner_id.in_(partner_ids)))
    for letter in letters:
        for invoice_id in letter.invoice_ids or ():
            due = due_dates.get(invoice_id)
            if due is not None:
                reminded[invoice_id] = max(reminded[invoice_id], step_reached(due, letter.sent_on, steps))
    return reminded


def due_letters(as_of: dt.date) -> dict[int, list[DunnedItem]]:
    """Per customer that needs a letter on `as_of`: every overdue open invoice of it, oldest due first."""
    from modules.accounting.reconcile import open_receivables

    steps = settings.dunning_steps()
    if not steps:
        return {}
    items = open_receivables(as_of=as_of)
    owed: dict[int, Decimal] = defaultdict(Decimal)
    per_invoice: dict[int, tuple[int, dt.date, Decimal]] = {}
    for item in items:
        owed[item.line.partner_id] += item.residual
        if item.invoice_id is None or item.residual <= 0 or item.due_date is None:
            continue
        partner_id, due, residual = per_invoice.get(item.invoice_id, (item.line.partner_id, item.due_date, ZERO))
        per_invoice[item.invoice_id] = (partner_id, min(due, item.due_date), residual + item.residual)
    collecting = collecting_invoice_ids(per_invoice)
    overdue = {
        invoice_id: values
        for invoice_id, values in per_invoice.items()
        if invoice_id not in collecting and step_reached(values[1], as_of, steps) > 0 and owed[values[0]] > 0
    }
    if not overdue:
        return {}
    due_dates = {invoice_id: values[1] for invoice_id, values in overdue.items()}
    reminded = _reminded_steps({values[0] for values in overdue.values()}, due_dates, steps)
    invoices = {
        invoice.id: invoice for invoice in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(overdue)))
    }
    letters: dict[int, list[DunnedItem]] = defaultdict(list)
    for invoice_id, (partner_id, due, residual) in overdue.items():
        letters[partner_id].append(
            DunnedItem(invoices[invoice_id], due, residual, days_late(due, as_of), step_reached(due, as_of, steps))
        )
    return {
        partner_id: sorted(listed, key=lambda i: (i.due_date, i.invoice.number or ""))
        for partner_id, listed in letters.items()
        if any(item.step > reminded.get(item.invoice.id, 0) for item in listed)
    }


def send_letter(partner: Partner, items: Sequence[DunnedItem], as_of: dt.date) -> DunningLetter | None:
    """Queue the reminder email and record the letter; None (nothing written) when the customer has no address."""
    recipients = customer_recipients(partner)
    if not recipients:
        log.warning("dunning: customer %s has no email address, no reminder sent", partner.id)
        return None
    step = max(item.step for item in items)
    total = sum((item.residual for item in items), ZERO)
    invoice_ids = [item.invoice.id for item in items]
    key = hashlib.sha256(",".join(map(str, invoice_ids)).encode()).hexdigest()[:16]
    message = queue_email(
        recipients,
        "accounting/dunning",
        partner.language,
        context={"customer": partner, "items": list(items), "total": total, "step": step, "as_of": as_of},
        dedupe_key=f"accounting.dunning:{partner.id}:{as_of.isoformat()}:{step}:{key}",
    )
    db.session.flush()
    letter = DunningLetter(
        partner_id=partner.id,
        step=step,
        sent_on=as_of,
        outbox_message_id=message.id,
        invoice_ids=invoice_ids,
        total=total,
    )
    db.session.add(letter)
    db.session.flush()
    return letter


def run_dunning(as_of: dt.date | None = None) -> list[DunningLetter]:
    """Send today's reminders (or those of `as_of`); the caller commits."""
    as_of = as_of or clock.today()
    letters = due_letters(as_of)
    if not letters:
        return []
    partners = {p.id: p for p in db.session.scalars(sa.select(Partner).where(Partner.id.in_(letters)))}
    sent = []
    for partner_id in sorted(letters, key=lambda pid: (partners[pid].name.casefold(), pid)):
        letter = send_letter(partners[partner_id], letters[partner_id], as_of)
        if letter is not None:
            sent.append(letter)
    return sent
