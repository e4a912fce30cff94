"""Dunning (solleciti): at each step (days after the due date, from settings) one email per customer, in its
language, listing all its overdue open invoices, one row per overdue instalment (an invoice in instalments is late
only for the instalments past due); a `DunningLetter` records each email sent.

An instalment counts as reminded at the step it had reached on the day of each letter that listed its invoice, so no
instalment is reminded twice at the same step, and a customer gets a letter only when one reached a new step.
Customers whose open items are all matched get nothing, nor customers whose unapplied payments or credit notes cover
what they owe; what a SEPA direct debit batch is collecting is left out.
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
from modules.accounting.sepa import not_collecting
from modules.invoicing.models import Invoice

log = logging.getLogger(__name__)
ZERO = Decimal("0.00")


def step_reached(due_date: dt.date, on: dt.date, steps: Sequence[int]) -> int:
    """How many dunning steps (days after due) an item due on `due_date` has reached on `on` (0: none yet)."""
    late = days_late(due_date, on)
    return sum(1 for days in sorted(steps) if late >= days)


@dataclass(frozen=True)
class DunnedItem:
    """An overdue invoice, or one overdue instalment of it, as the letter lists it."""

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


def _reminded_steps(partner_ids: set[int], due_dates: set[tuple[int, dt.date]], steps: Sequence[int]) -> dict:
    """For each (invoice, due date) of an instalment: the highest step it had reached at a letter listing the invoice
    (an instalment not yet due at that letter had reached none)."""
    reminded: dict[tuple[int, dt.date], int] = defaultdict(int)
    by_invoice: dict[int, list[dt.date]] = defaultdict(list)
    for invoice_id, due in due_dates:
        by_invoice[invoice_id].append(due)
    letters = db.session.scalars(sa.select(DunningLetter).where(DunningLetter.partner_id.in_(partner_ids)))
    for letter in letters:
        for invoice_id in letter.invoice_ids or ():
            for due in by_invoice.get(invoice_id, ()):
                key = (invoice_id, due)
                reminded[key] = max(reminded[key], step_reached(due, letter.sent_on, steps))
    return reminded


def due_letters(as_of: dt.date) -> dict[int, list[DunnedItem]]:
    """Per customer that needs a letter on `as_of`: every overdue open instalment of its invoices (an invoice in one
    instalment: the invoice), oldest due first. Instalments not yet due are not listed nor counted, and what a SEPA
    batch is collecting is left out."""
    from modules.accounting.reconcile import open_receivables

    steps = settings.dunning_steps()
    if not steps:
        return {}
    items = open_receivables(as_of=as_of)
    owed: dict[int, Decimal] = defaultdict(Decimal)
    for item in items:
        owed[item.line.partner_id] += item.residual
    # Per (invoice, due date): the customer and what is open of the instalment(s) due that day.
    per_instalment: dict[tuple[int, dt.date], tuple[int, Decimal]] = {}
    for item, left in not_collecting(items):
        if left <= 0 or item.due_date is None or step_reached(item.due_date, as_of, steps) == 0:
            continue
        key = (item.invoice_id, item.due_date)
        partner_id, residual = per_instalment.get(key, (item.line.partner_id, ZERO))
        per_instalment[key] = (partner_id, residual + left)
    overdue = {key: values for key, values in per_instalment.items() if owed[values[0]] > 0}
    if not overdue:
        return {}
    reminded = _reminded_steps({partner_id for partner_id, _residual in overdue.values()}, set(overdue), steps)
    invoice_ids = {invoice_id for invoice_id, _due in overdue}
    invoices = {
        invoice.id: invoice for invoice in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(invoice_ids)))
    }
    letters: dict[int, list[DunnedItem]] = defaultdict(list)
    for (invoice_id, due), (partner_id, residual) in overdue.items():
        letters[partner_id].append(
            DunnedItem(invoices[invoice_id], due, residual, days_late(due, as_of), step_reached(due, as_of, steps))
        )
    return {
        partner_id: sorted(listed, key=lambda i: (i.due_date, i.invoice.number or ""))
        for partner_id, listed in letters.items()
        if any(item.step > reminded.get((item.invoice.id, item.due_date), 0) for item in listed)
    }


def send_letter(partner: Partner, items: Sequence[DunnedItem], as_of: dt.date) -> DunningLetter | None:
    """Queue the reminder email and record the letter; None (nothing written) when the customer has no address."""
    recipients = customer_recipients(partner)
    if not recipients:
        log.warning("dunning: customer %s has no email address, no reminder sent", partner.id)
        return None
    step = max(item.step for item in items)
    total = sum((item.residual for item in items), ZERO)
    invoice_ids = list(dict.fromkeys(item.invoice.id for item in items))  # an invoice once for all its instalments
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
