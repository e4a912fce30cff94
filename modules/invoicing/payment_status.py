"""How far posted documents are paid, asked of the module keeping the books (core's PAYMENT_STATUS point).

Invoicing records no payments. When a module implementing `PaymentStatusProvider` is enabled (accounting), the
back-office list and page, the portal's list and the API show each posted document's payment state and the amount
still due; without one they show what they showed before (the API's fields are null).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import has_request_context, request

from core.extension_points import PAYMENT_STATUS, PaymentStatus, implementations
from modules.invoicing.models import Invoice


def tracked() -> bool:
    """Whether an enabled module keeps payments, so pages show a payment column at all."""
    return bool(implementations(PAYMENT_STATUS))


def payment_states(invoices: Iterable[Invoice]) -> dict[int, PaymentStatus]:
    """The payment state of each posted document among `invoices`, asked once for all of them (one per page)."""
    ids = [invoice.id for invoice in invoices if invoice.state == "posted"]
    states: dict[int, PaymentStatus] = {}
    if ids:
        for provider in implementations(PAYMENT_STATUS):
            states.update(provider.payment_states(ids))
    _answered().update(states)
    return states


def _answered() -> dict[int, PaymentStatus]:
    """What this request was told already, so the API's schema reads a page's states without asking again per row
    (kept in the request's environ: an app context may outlive many requests, and payments change between them)."""
    if not has_request_context():
        return {}
    return request.environ.setdefault("copydesk.invoicing.payment_states", {})


def payment_state(invoice: Invoice) -> PaymentStatus | None:
    """One document's payment state: from the page's answer when `payment_states` was asked for it, else asked."""
    known = _answered()
    if invoice.id in known:
        return known[invoice.id]
    return payment_states([invoice]).get(invoice.id)
