"""A customer's job-accounting settings: hidden document names, anonymisation after some months, held-job hours."""

from __future__ import annotations

from typing import Any

from core.db import db
from core.validation import Checker
from modules.device_accounting.models import AccountingSettings
from modules.rentals.validation import check_customer

# Fifty years: beyond that a number of months is a typing mistake.
MAX_ANONYMISE_MONTHS = 600
# A held print job waits 4 hours by default, a month at most: its document is kept encrypted until then.
DEFAULT_HELD_JOB_HOURS = 4
MAX_HELD_JOB_HOURS = 720


def settings_of(customer_id: int) -> AccountingSettings:
    """The customer's settings; a customer that never saved any gets the defaults (not stored)."""
    found = db.session.get(AccountingSettings, customer_id)
    return found or AccountingSettings(
        customer_id=customer_id,
        hide_document_names=False,
        anonymise_after_months=None,
        held_job_hours=DEFAULT_HELD_JOB_HOURS,
    )


def save_settings(customer_id: int, data: dict[str, Any]) -> AccountingSettings:
    """Change the fields `data` holds (hide_document_names, anonymise_after_months: None keeps transactions whole;
    held_job_hours: how long a held print job waits for its release)."""
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
    if "held_job_hours" in data:
        value = data["held_job_hours"]
        if value is None or value == "":
            values["held_job_hours"] = DEFAULT_HELD_JOB_HOURS
        else:
            values["held_job_hours"] = check.integer("held_job_hours", value, 1, MAX_HELD_JOB_HOURS)
    check.raise_if_any()
    assert customer is not None
    settings = db.session.get(AccountingSettings, customer.id)
    if settings is None:
        settings = AccountingSettings(
            customer_id=customer.id, hide_document_names=False, held_job_hours=DEFAULT_HELD_JOB_HOURS
        )
        db.session.add(settings)
    for field, value in values.items():
        setattr(settings, field, value)
    db.session.flush()
    return settings
