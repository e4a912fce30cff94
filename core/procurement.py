"""Public procurement references on e-invoices (FatturaPA DatiContratto / DatiOrdineAcquisto): the tender's CIG, the
project's CUP and the customer's contract or purchase order, checked and worded the same way by every module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import gettext as _

from core.validation import Checker

CIG_LENGTH = 10
CUP_LENGTH = 15
ORDER_REFERENCE_LENGTH = 20
ORDER_KINDS = ("contract", "order")  # DatiContratto | DatiOrdineAcquisto
FIELDS = ("cig", "cup", "order_kind", "order_reference", "order_date")
CODE_LENGTHS = {"cig": CIG_LENGTH, "cup": CUP_LENGTH}


def code_error(value: str, length: int) -> str | None:
    """What is wrong with a CIG or CUP as the exchange system takes it (exactly `length` upper-case letters or
    digits); None when it is right."""
    if len(value) == length and value.isascii() and value.isalnum() and value == value.upper():
        return None
    return _("Exactly %(length)d letters or digits.", length=length)


def check_procurement(check: Checker, data: dict[str, Any], fields: Iterable[str] = FIELDS) -> dict[str, Any]:
    """The references among `fields` (all by default) cleaned: CIG and CUP upper-cased, of their exact length; the
    kind contract or order; the customer's number at most 20 characters; its date. Empty values are None; errors go
    to `check` under the field's name."""
    fields = set(fields)
    clean: dict[str, Any] = {}
    for field, length in CODE_LENGTHS.items():
        if field not in fields:
            continue
        value = data.get(field)
        text = "" if value is None else str(value).strip().upper()
        error = code_error(text, length) if text else None
        if error:
            check.fail(field, error)
        clean[field] = text or None
    if "order_kind" in fields:
        kind = data.get("order_kind")
        blank = kind is None or (isinstance(kind, str) and not kind.strip())
        clean["order_kind"] = None if blank else check.choice("order_kind", kind, ORDER_KINDS)
    if "order_reference" in fields:
        clean["order_reference"] = check.text("order_reference", data.get("order_reference"), ORDER_REFERENCE_LENGTH)
    if "order_date" in fields:
        clean["order_date"] = check.date("order_date", data.get("order_date"), required=False)
    return clean


def reference_text(kind: str | None, reference: str, date: str | None = None) -> str:
    """The customer's contract or purchase order as a page or PDF names it; `date` already formatted."""
    if kind == "order":
        if date:
            return _("Purchase order %(reference)s of %(date)s", reference=reference, date=date)
        return _("Purchase order %(reference)s", reference=reference)
    if date:
        return _("Contract %(reference)s of %(date)s", reference=reference, date=date)
    return _("Contract %(reference)s", reference=reference)
