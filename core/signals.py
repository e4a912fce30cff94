"""Blinker signals: "something happened" messages between modules.

Receivers must not assume an order and must not do heavy work inline: enqueue a job after commit instead.
Each signal's sender is the app; keyword arguments are listed in its docstring. A signal is declared here only once
something sends it (tests/test_layout.py checks).
"""

from blinker import Namespace

_signals = Namespace()

modules_loaded = _signals.signal(
    "modules-loaded", doc="All enabled modules are set up. kwargs: resolution (core.loader.Resolution)."
)
user_logged_in = _signals.signal("user-logged-in", doc="A user logged in. kwargs: user_id.")
reading_accepted = _signals.signal(
    "reading-accepted", doc="A meter reading was accepted. kwargs: reading_id, device_id."
)
reading_recorded = _signals.signal(
    "reading-recorded",
    doc="A meter reading was accepted, in the same transaction (before commit): receivers write in db.session so "
    "their state commits or rolls back with the reading, must be quick and must not raise. kwargs: reading_id, "
    "device_id.",
)
invoice_posting = _signals.signal(
    "invoice-posting",
    doc="An invoice or credit note is being posted: it has its number, dates and state 'posted', in the same "
    "transaction (before commit). Receivers write in db.session so their rows commit or roll back with the "
    "posting; a receiver that raises makes invoicing.services.post raise, and the caller rolls the posting back "
    "(accounting posts the sales entry here). kwargs: invoice (modules.invoicing.models.Invoice).",
)
invoice_posted = _signals.signal(
    "invoice-posted", doc="An invoice or credit note got its number. kwargs: invoice_id, customer_id."
)
email_sent = _signals.signal("email-sent", doc="An outbox message was handed to the mail server. kwargs: message_id.")
lines_billed = _signals.signal(
    "lines-billed",
    doc="Invoicing put lines of a source on a draft invoice, in the same transaction: receivers write in "
    "db.session so their state commits or rolls back with the invoice, and must be quick. "
    "kwargs: source (str), lines: list[tuple[str, dict]] -- (source_ref, BillableLine.extra).",
)
lines_released = _signals.signal(
    "lines-released",
    doc="Lines went back to unbilled: their draft was cancelled or a credit note reversed them; same transaction "
    "as that change, receivers write in db.session. kwargs: source (str), source_refs: list[str].",
)
