"""A customer's job-accounting settings: hidden document names and anonymisation after some months."""

from __future__ import annotations

from typing import Any

from core.db import db
from modules.device_accounting.models import AccountingSettings
from modules.rentals.validation import Checker, check_customer

# Fifty years: beyond that a number of months is a typing mistake.
MAX_ANONYMISE_MONTHS = 600


def settings_of(customer_id: int) -> AccountingSettings:
    """The customer's settings; a customer that never saved any gets the defaults (not stored)."""
    found = db.session.get(AccountingSettings, customer_id)
    return found or AccountingSettings(customer_id=customer_id, hide_document_names=False, anonymise_after_months=None)


def save_settings(customer_id: int, data: dict[str, Any]) -> AccountingSettings:
    """Change the fields `data` holds (hide_document_names, anonymise_after_months; None keeps transactions whole)."""
    check = Checker()
    customer = check_customer(check, "customer_id", customer_id, required=True)
    values: dict[str, Any] = {}
    if "hide_document_names" in data:
        values["hide_document_names"] = check.boolean("hide_document_names", data["hide_document_names"])
    if "anonymise_after_months" in data:
        value = data["anonymise_after_months"]
        if value is None or value == "":
            values["anonymise_after_months"] = None
        else:
            values["anonymise_after_months"] = check.integer("anonymise_after_months", value, 1, MAX_ANONYMISE_MONTHS)
    check.raise_if_any()
    assert customer is not None
    settings = db.session.get(AccountingSettings, customer.id)
    if settings is None:
        settings = AccountingSettings(customer_id=customer.id, hide_document_names=False)
        db.session.add(settings)
    for field, value in values.items():
        setattr(settings, field, value)
    db.session.flush()
    return settings
