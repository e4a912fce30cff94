"""Rentals input checks beyond core's conversions (core.validation.Checker): its limits and the customer check."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from core.db import db
from core.models import Partner
from core.validation import Checker

MAX_PAGES = 2**31 - 1


def check_customer(check: Checker, field: str, customer_id: Any, required: bool) -> Partner | None:
    number = check.integer(field, customer_id, 1, MAX_PAGES, required=required)
    if number is None:
        return None
    customer = db.session.get(Partner, number)
    if customer is None or not customer.is_customer:
        check.fail(field, _("There is no customer with id %(id)s.", id=number))
        return None
    return customer


def as_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value
