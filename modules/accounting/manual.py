"""Entries staff post and reverse by hand (the back-office form and the API): a manual entry in any journal, and the
reversal of a manual or opening entry. An entry a document posted (an invoice, a payment, a supplier bill, a VAT
settlement) is undone through its document instead (a credit note, cancelling the payment), so the document and
its entry never disagree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from flask_babel import gettext as _

from core.validation import fail
from modules.accounting import ledger
from modules.accounting.models import Entry

REVERSIBLE_SOURCES = ("manual", "opening")
DEFAULT_JOURNAL = "VAR"


def post_manual(
    journal: str | None,
    date: dt.date | None,
    lines: Sequence[ledger.LineSpec],
    *,
    reference: str = "",
    memo: str | None = None,
    user_id: int | None = None,
) -> Entry:
    """Post a balanced entry typed by a person (source `manual`), in the miscellaneous journal unless told."""
    return ledger.post_entry(
        (journal or DEFAULT_JOURNAL).strip().upper(),
        date,
        lines,
        reference=reference or "",
        source="manual",
        memo=memo or None,
        user_id=user_id,
    )


def reverse_by_hand(entry: Entry, date: dt.date | None = None, *, user_id: int | None = None) -> Entry:
    """Reverse a manual or opening entry (dated `date`, default today); ValidationError "entry" for any other."""
    if entry.source not in REVERSIBLE_SOURCES and entry.source != "reversal":
        fail(
            "entry",
            _(
                "%(number)s was posted by a document: undo it from the document (a credit note, cancelling the "
                "payment).",
                number=entry.number,
            ),
        )
    return ledger.reverse_entry(entry, date, user_id=user_id)
