"""The chart of accounts and the journals as the dealer keeps them: adding an account or a journal, renaming one,
retiring one. An account or journal that has entries keeps what its entries mean (code, type, kind); only its names
and whether it is in use change. The default chart and journals themselves are chart.py's."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.partners import normalize_iban
from core.validation import Checker
from modules.accounting.ledger import find_account
from modules.accounting.models import ACCOUNT_TYPES, JOURNAL_KINDS, Account, Entry, EntryLine, Journal

ACCOUNT_FIELDS = (
    "code",
    "name_it",
    "name_en",
    "name_es",
    "type",
    "postable",
    "reconcilable",
    "needs_partner",
    "parent",
    "active",
)
JOURNAL_FIELDS = ("code", "name", "kind", "iban", "account", "active")
# What an account's entries depend on: fixed once it has any.
ACCOUNT_FIXED = ("code", "type", "postable")
FLAG_DEFAULTS = {"postable": True, "reconcilable": False, "needs_partner": False, "active": True}
CODE_RE = re.compile(r"^[0-9A-Z][0-9A-Z.\-]{0,9}$")
JOURNAL_CODE_RE = re.compile(r"^[0-9A-Z]{1,10}$")
# The kinds whose journal is a place money sits: its account is that bank account or the cash box.
MONEY_KINDS = ("bank", "cash")


def account_label(account: Account) -> str:
    return f"{account.code} {account.name()}"


def _has_lines(account: Account) -> bool:
    return db.session.scalar(sa.select(EntryLine.id).where(EntryLine.account_id == account.id).limit(1)) is not None


def _has_entries(journal: Journal) -> bool:
    return db.session.scalar(sa.select(Entry.id).where(Entry.journal_id == journal.id).limit(1)) is not None


def save_account(account: Account | None, **values: Any) -> Account:
    """Create an account (`account` None) or change one; only the fields given change.

    `parent` is the code of the group it belongs to (a group is an account entries are not posted to); `name_it` is
    required, English and Spanish default to it. Refused with a ValidationError naming the field, nothing written:
    a code in use or malformed, an unknown type or parent, a parent that is postable or the account itself, a
    change of code, type or postable on an account that has entries, a group that still has postable accounts in
    use under it made postable.
    """
    check = Checker()
    creating = account is None
    current = {name: getattr(account, name) for name in ACCOUNT_FIELDS if name != "parent"} if account else {}
    given = {name: value for name, value in values.items() if name in ACCOUNT_FIELDS}
    unknown = set(values) - set(given)
    for name in sorted(unknown):
        check.fail(name, _("Unknown field."))
    if "code" in given or creating:
        code = (check.text("code", given.get("code"), 10, required=True) or "").upper()
        if code and not CODE_RE.match(code):
            check.fail("code", _("Letters, digits, dots and dashes, at most 10, e.g. 1810."))
        elif code:
            other = find_account(code)
            if other is not None and other is not account:
                check.fail("code", _("Another account already has the code %(code)s.", code=code))
        given["code"] = code
    for name in ("name_it", "name_en", "name_es"):
        if name in given or (creating and name == "name_it"):
            given[name] = check.text(name, given.get(name), 200, required=name == "name_it")
    if "type" in given or creating:
        given["type"] = check.choice("type", given.get("type"), ACCOUNT_TYPES)
    for name in ("postable", "reconcilable", "needs_partner", "active"):
        if name in given:
            given[name] = check.boolean(name, given[name], default=current.get(name, FLAG_DEFAULTS[name]))
    parent = None
    if given.get("parent"):
        parent = find_account(str(given["parent"]))
        if parent is None:
            check.fail("parent", _("No account has the code %(code)s.", code=given["parent"]))
        elif parent.postable:
            check.fail("parent", _("%(code)s is posted to: choose a group.", code=parent.code))
        elif account is not None and _is_under(parent, account):
            check.fail("parent", _("An account cannot be inside itself."))
    if account is not None and _has_lines(account):
        for name in ACCOUNT_FIXED:
            if name in given and given[name] is not None and given[name] != current[name]:
                check.fail(name, _("The account has entries: its code, type and whether it is posted to stay."))
    check.raise_if_any()
    if account is None:
        account = Account(
            code=given["code"],
            name_it=given["name_it"],
            type=given["type"],
            **{name: given.get(name, default) for name, default in FLAG_DEFAULTS.items()},
        )
        db.session.add(account)
    for name in ("code", "name_it", "type", "postable", "reconcilable", "needs_partner", "active"):
        if given.get(name) is not None:
            setattr(account, name, given[name])
    for name in ("name_en", "name_es"):
        if name in given or creating:
            setattr(account, name, given.get(name) or account.name_it)
    if "parent" in given:
        account.parent = parent
    db.session.flush()
    return account


def _is_under(group: Account, account: Account) -> bool:
    """True when `group` is `account` or lies inside it (a parent chosen inside the account would make a loop)."""
    current, seen = group, set()
    while current is not None and current.id not in seen:
        if current.id == account.id:
            return True
        seen.add(current.id)
        current = current.parent
    return False


def postable_accounts(*types: str, in_use: bool = True) -> list[Account]:
    """The accounts entries may be posted to, by code (all types, or those given); retired ones too unless
    `in_use` (a report still reads their lines)."""
    query = sa.select(Account).where(Account.postable.is_(True)).order_by(Account.code)
    if in_use:
        query = query.where(Account.active.is_(True))
    if types:
        query = query.where(Account.type.in_(types))
    return list(db.session.scalars(query))


def find_journal(code: str | None) -> Journal | None:
    if not code:
        return None
    return db.session.scalar(sa.select(Journal).where(Journal.code == code.strip().upper()))


def save_journal(journal: Journal | None, **values: Any) -> Journal:
    """Create a journal (a second bank account, a petty cash) or change one; only the fields given change.

    `account` is the code of a bank or cash journal's own account (required for those kinds: its payments debit it),
    `iban` is checked (python-stdnum). A journal with entries keeps its code and kind.
    """
    check = Checker()
    creating = journal is None
    given = {name: value for name, value in values.items() if name in JOURNAL_FIELDS}
    for name in sorted(set(values) - set(given)):
        check.fail(name, _("Unknown field."))
    if "code" in given or creating:
        code = (check.text("code", given.get("code"), 10, required=True) or "").upper()
        if code and not JOURNAL_CODE_RE.match(code):
            check.fail("code", _("Capital letters and digits, at most 10, e.g. BNK2."))
        elif code:
            other = find_journal(code)
            if other is not None and other is not journal:
                check.fail("code", _("Another journal already has the code %(code)s.", code=code))
        given["code"] = code
    if "name" in given or creating:
        given["name"] = check.text("name", given.get("name"), 100, required=True)
    if "kind" in given or creating:
        given["kind"] = check.choice("kind", given.get("kind"), JOURNAL_KINDS)
    if "active" in given:
        given["active"] = check.boolean("active", given["active"], default=True)
    if "iban" in given:
        try:
            given["iban"] = normalize_iban(given["iban"])
        except ValueError as error:
            check.fail("iban", str(error))
    kind = given.get("kind") or (journal.kind if journal else None)
    account = journal.account if journal else None
    if given.get("account"):
        account = find_account(str(given["account"]))
        if account is None:
            check.fail("account", _("No account has the code %(code)s.", code=given["account"]))
        elif not account.postable or account.type != "asset":
            check.fail("account", _("Choose an asset account entries are posted to (a bank account, the cash)."))
    elif "account" in given:
        account = None
    if kind in MONEY_KINDS and account is None and "account" not in check:
        check.fail("account", _("A bank or cash journal needs its account."))
    if journal is not None and _has_entries(journal):
        for name in ("code", "kind"):
            if given.get(name) and given[name] != getattr(journal, name):
                check.fail(name, _("The journal has entries: its code and kind stay."))
    check.raise_if_any()
    if journal is None:
        journal = Journal(code=given["code"], name=given["name"], kind=given["kind"], active=given.get("active", True))
        db.session.add(journal)
    for name in ("code", "name", "kind", "active"):
        if given.get(name) is not None:
            setattr(journal, name, given[name])
    if "iban" in given:
        journal.iban = given["iban"]
    journal.account = account
    db.session.flush()
    return journal
