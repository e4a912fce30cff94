"""Accounting settings (core.settings keys `accounting.*`), read through typed functions with the chart's defaults.

Keys: `accounting.income.<line kind>` (account code per invoicing line kind), `accounting.account.<role>`
(receivable, payable, vat_payable, vat_receivable, vat_settlement: account codes), `accounting.lock_date` (ISO date),
`accounting.vat_periodicity` ("monthly" | "quarterly"), `accounting.dunning_steps` (days after due).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.labels import local_date
from core.settings import get_setting, set_setting
from core.validation import fail
from modules.accounting import chart
from modules.accounting.models import Account, VatSettlement

VAT_PERIODICITIES = ("monthly", "quarterly")
DEFAULT_DUNNING_STEPS = [7, 21, 45]
ACCOUNT_ROLES = {
    "receivable": chart.RECEIVABLE,
    "payable": chart.PAYABLE,
    "vat_payable": chart.VAT_PAYABLE,
    "vat_receivable": chart.VAT_RECEIVABLE,
    "vat_settlement": chart.VAT_SETTLEMENT,
}


def _account(code: str) -> Account:
    from modules.accounting.ledger import get_account

    return get_account(code)


def income_account_code(kind: str) -> str:
    """The income account's code for an invoicing line kind (fee, overage, minimum, consumable, chargeback, ...)."""
    default = chart.INCOME_BY_KIND.get(kind, chart.OTHER_INCOME)
    return get_setting(f"accounting.income.{kind}", default) or default


def income_account(kind: str) -> Account:
    return _account(income_account_code(kind))


def set_income_account(kind: str, code: str) -> None:
    """Post lines of `kind` to the account `code` (ValidationError "account" when it cannot take entries)."""
    account = _account(code)
    if not account.postable or not account.active or account.type != "income":
        fail("account", _("Choose an active income account that takes entries."))
    set_setting(f"accounting.income.{kind}", account.code)


def role_account_code(role: str) -> str:
    return get_setting(f"accounting.account.{role}", ACCOUNT_ROLES[role]) or ACCOUNT_ROLES[role]


def receivable_account() -> Account:
    return _account(role_account_code("receivable"))


def payable_account() -> Account:
    return _account(role_account_code("payable"))


def vat_payable_account() -> Account:
    return _account(role_account_code("vat_payable"))


def vat_receivable_account() -> Account:
    return _account(role_account_code("vat_receivable"))


def vat_settlement_account() -> Account:
    return _account(role_account_code("vat_settlement"))


def lock_date() -> dt.date | None:
    """Nothing may be posted on or before this date (None: no period is closed)."""
    value = get_setting("accounting.lock_date")
    return dt.date.fromisoformat(value) if value else None


def set_lock_date(value: dt.date | None) -> None:
    """Close the books up to and including `value` (None opens them); the caller commits.

    The dealer closes a period after settling its VAT, so the lock date may not be moved back (or removed) before the
    end of the last settled period: an entry there would change VAT already settled. ValidationError "lock_date"."""
    settled = last_settled_day()
    if settled is not None and (value is None or value < settled):
        fail(
            "lock_date",
            _("VAT is settled up to %(date)s: close the books on that day or later.", date=local_date(settled)),
        )
    set_setting("accounting.lock_date", value.isoformat() if value else None)


def last_settled_day() -> dt.date | None:
    """The end of the last VAT settlement's period (None before the first)."""
    return db.session.scalar(sa.select(sa.func.max(VatSettlement.period_end)))


def vat_periodicity() -> str:
    value = get_setting("accounting.vat_periodicity", "monthly")
    return value if value in VAT_PERIODICITIES else "monthly"


def set_vat_periodicity(value: str) -> None:
    if value not in VAT_PERIODICITIES:
        fail("vat_periodicity", _("Choose monthly or quarterly."))
    set_setting("accounting.vat_periodicity", value)


def dunning_steps() -> list[int]:
    """Days after the due date at which a reminder goes out, ascending."""
    value = get_setting("accounting.dunning_steps")
    if not value:
        return list(DEFAULT_DUNNING_STEPS)
    return sorted({int(step) for step in value})


def set_dunning_steps(steps: list[int]) -> None:
    if not steps or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 or s > 365 for s in steps):
        fail("dunning_steps", _("Give one or more whole numbers of days between 1 and 365."))
    set_setting("accounting.dunning_steps", sorted(set(steps)))
