"""/api/v1 accounts, journals and entries: the chart of accounts (add, rename), the journals, the ledger's entries
(list, read, post a manual balanced entry, reverse one)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import contains, db
from core.validation import MAX_YEAR, MIN_YEAR
from modules.accounting import accounts, ledger, manual
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.models import (
    ACCOUNT_TYPES,
    ENTRY_SOURCES,
    JOURNAL_KINDS,
    ZERO,
    Account,
    Entry,
    EntryLine,
    Journal,
)

accounts_blp = ApiBlueprint(
    "accounting_api_accounts", __name__, url_prefix="/accounts", description="The chart of accounts."
)
journals_blp = ApiBlueprint("accounting_api_journals", __name__, url_prefix="/journals", description="Journals.")
entries_blp = ApiBlueprint(
    "accounting_api_entries",
    __name__,
    url_prefix="/entries",
    description="Journal entries: posted balanced, never edited, undone by a reversal.",
)
BLUEPRINTS = [accounts_blp, journals_blp, entries_blp]

CODE = ma.validate.Length(min=1, max=10)
# The years a date may have (core.validation's), so an entry is never numbered in the year 540.
DATE_RANGE = ma.validate.Range(min=dt.date(MIN_YEAR, 1, 1), max=dt.date(MAX_YEAR, 12, 31))
# What an amount column (Numeric(14, 2)) holds.
AMOUNT_RANGE = ma.validate.Range(min=0, max=Decimal("999999999999.99"))


# Accounts


class AccountSchema(ma.Schema):
    id = Integer(dump_only=True)
    code = String(required=True, validate=CODE, metadata={"description": "Unique, e.g. 1810; letters, digits, . -"})
    name = String(dump_only=True, metadata={"description": "In the caller's language."})
    name_it = String(required=True, validate=ma.validate.Length(min=1, max=200))
    name_en = String(validate=ma.validate.Length(max=200), metadata={"description": "Default: the Italian name."})
    name_es = String(validate=ma.validate.Length(max=200), metadata={"description": "Default: the Italian name."})
    type = String(required=True, validate=ma.validate.OneOf(ACCOUNT_TYPES))
    postable = Boolean(metadata={"description": "False for a group; default true."})
    reconcilable = Boolean(metadata={"description": "Its lines are matched (receivables, payables)."})
    needs_partner = Boolean(metadata={"description": "Every line names its customer or supplier."})
    parent = String(allow_none=True, validate=CODE, metadata={"description": "The code of the group it belongs to."})
    active = Boolean()


class AccountPatchSchema(AccountSchema):
    code = String(validate=CODE, metadata={"description": "Fixed once the account has entries."})
    name_it = String(validate=ma.validate.Length(min=1, max=200))
    type = String(validate=ma.validate.OneOf(ACCOUNT_TYPES), metadata={"description": "Fixed once it has entries."})


class AccountListArgs(PageArgs):
    q = String(validate=ma.validate.Length(max=100), metadata={"description": "Part of the code or of a name."})
    type = String(validate=ma.validate.OneOf(ACCOUNT_TYPES))
    postable = Boolean()
    active = Boolean()


def _dump_account(account: Account) -> dict[str, Any]:
    fields = ("id", "code", "name_it", "name_en", "name_es", "type", "postable", "reconcilable", "needs_partner")
    return {
        **{name: getattr(account, name) for name in fields},
        "name": account.name(),
        "parent": account.parent.code if account.parent else None,
        "active": account.active,
    }


def _account_query(account_id: int) -> sa.Select:
    return sa.select(Account).where(Account.id == account_id).options(selectinload(Account.parent))


@accounts_blp.route("")
class Accounts(MethodView):
    @require(VIEW)
    @accounts_blp.arguments(AccountListArgs, location="query")
    @accounts_blp.response(200, page_schema(AccountSchema))
    def get(self, args: dict[str, Any]):
        """List accounts

        Ordered by code: groups before the accounts inside them.
        """
        query = sa.select(Account).options(selectinload(Account.parent)).order_by(Account.code)
        if args.get("q"):
            text = args["q"]
            query = query.where(
                sa.or_(
                    contains(Account.code, text),
                    contains(Account.name_it, text),
                    contains(Account.name_en, text),
                    contains(Account.name_es, text),
                )
            )
        if args.get("type"):
            query = query.where(Account.type == args["type"])
        for flag in ("postable", "active"):
            if flag in args:
                query = query.where(getattr(Account, flag).is_(args[flag]))
        page = paginate(query, args)
        return {**page, "items": [_dump_account(account) for account in page["items"]]}

    @require(EDIT)
    @accounts_blp.arguments(AccountSchema)
    @accounts_blp.response(201, AccountSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Add an account

        `422` naming the field: a code in use, a `parent` that is not a group.
        """
        with committing():
            account = accounts.save_account(None, **data)
        location = url_for("accounting_api_accounts.AccountItem", account_id=account.id)
        return _dump_account(account), 201, {"Location": location}


@accounts_blp.route(f"/<{ID_PATH}:account_id>")
class AccountItem(MethodView):
    @require(VIEW)
    @accounts_blp.response(200, AccountSchema)
    @accounts_blp.alt_response(404, response="NOT_FOUND")
    def get(self, account_id: int):
        """Read an account"""
        return _dump_account(get_or_404(_account_query(account_id)))

    @require(EDIT)
    @accounts_blp.arguments(AccountPatchSchema)
    @accounts_blp.response(200, AccountSchema)
    @accounts_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], account_id: int):
        """Rename or change an account

        Only the fields sent change. An account with entries keeps its `code`, `type` and `postable` (`422`).
        """
        account = get_or_404(_account_query(account_id))
        with committing():
            accounts.save_account(account, **data)
        return _dump_account(account)


# Journals


class JournalSchema(ma.Schema):
    id = Integer()
    code = String(metadata={"description": "VEN sales, ACQ purchases, BNK bank, CAS cash, VAR miscellaneous."})
    name = String()
    kind = String(metadata={"enum": list(JOURNAL_KINDS)})
    iban = String(allow_none=True)
    account = String(allow_none=True, metadata={"description": "A bank or cash journal's account (its code)."})
    active = Boolean()


class JournalListArgs(PageArgs):
    kind = String(validate=ma.validate.OneOf(JOURNAL_KINDS))
    active = Boolean()


def _dump_journal(journal: Journal) -> dict[str, Any]:
    return {
        **{name: getattr(journal, name) for name in ("id", "code", "name", "kind", "iban", "active")},
        "account": journal.account.code if journal.account else None,
    }


@journals_blp.route("")
class Journals(MethodView):
    @require(VIEW)
    @journals_blp.arguments(JournalListArgs, location="query")
    @journals_blp.response(200, page_schema(JournalSchema))
    def get(self, args: dict[str, Any]):
        """List journals

        Ordered by code.
        """
        query = sa.select(Journal).options(selectinload(Journal.account)).order_by(Journal.code)
        if args.get("kind"):
            query = query.where(Journal.kind == args["kind"])
        if "active" in args:
            query = query.where(Journal.active.is_(args["active"]))
        page = paginate(query, args)
        return {**page, "items": [_dump_journal(journal) for journal in page["items"]]}


@journals_blp.route(f"/<{ID_PATH}:journal_id>")
class JournalItem(MethodView):
    @require(VIEW)
    @journals_blp.response(200, JournalSchema)
    @journals_blp.alt_response(404, response="NOT_FOUND")
    def get(self, journal_id: int):
        """Read a journal"""
        query = sa.select(Journal).where(Journal.id == journal_id).options(selectinload(Journal.account))
        return _dump_journal(get_or_404(query))


# Entries


class EntryLineInSchema(ma.Schema):
    account = String(required=True, validate=CODE, metadata={"description": "The account's code."})
    debit = DecimalString(
        validate=AMOUNT_RANGE, metadata={"description": "Default 0; 2 decimals at most; never both debit and credit."}
    )
    credit = DecimalString(validate=AMOUNT_RANGE, metadata={"description": "Default 0."})
    partner_id = id_field(
        allow_none=True, metadata={"description": "The customer or supplier: required on accounts that need one."}
    )
    label = String(validate=ma.validate.Length(max=200))
    due_date = ma.fields.Date(allow_none=True)


class EntryInSchema(ma.Schema):
    journal = String(validate=CODE, metadata={"description": "A journal's code; default VAR (miscellaneous)."})
    date = ma.fields.Date(required=True, validate=DATE_RANGE, metadata={"description": "After the lock date."})
    reference = String(validate=ma.validate.Length(max=200), metadata={"description": "The document it records."})
    memo = String(allow_none=True, validate=ma.validate.Length(max=2000))
    lines = ma.fields.List(
        ma.fields.Nested(EntryLineInSchema),
        required=True,
        validate=ma.validate.Length(min=2, max=200),
        metadata={"description": "At least two; debits equal credits."},
    )


class EntryLineSchema(ma.Schema):
    id = Integer()
    account = String(metadata={"description": "The account's code."})
    account_name = String()
    partner_id = Integer(allow_none=True)
    label = String()
    debit = DecimalString()
    credit = DecimalString()
    invoice_id = Integer(allow_none=True, metadata={"description": "A receivable line's invoice or credit note."})
    bill_id = Integer(allow_none=True, metadata={"description": "A payable line's supplier bill."})
    due_date = ma.fields.Date(allow_none=True)
    vat_rate = DecimalString(allow_none=True, metadata={"description": "On a VAT line: its rate (percent)."})
    vat_base = DecimalString(allow_none=True, metadata={"description": "On a VAT line: the taxable amount."})


class EntrySchema(ma.Schema):
    id = Integer()
    number = String(metadata={"description": "Journal/year/number, e.g. VEN/2026/0001: gapless per journal, year."})
    journal = String(metadata={"description": "The journal's code."})
    date = ma.fields.Date()
    reference = String()
    memo = String(allow_none=True)
    source = String(metadata={"enum": list(ENTRY_SOURCES)})
    source_id = Integer(allow_none=True, metadata={"description": "The id of the document (invoice, payment, ...)."})
    reversed_entry_id = Integer(allow_none=True, metadata={"description": "The entry this one reverses."})
    reversed_by_id = Integer(allow_none=True, metadata={"description": "The entry reversing this one."})
    created_by_id = Integer(allow_none=True)
    created_at = UtcDateTime()
    debit_total = DecimalString()
    credit_total = DecimalString()
    lines = ma.fields.List(ma.fields.Nested(EntryLineSchema))


class EntryListArgs(PageArgs):
    journal = String(validate=CODE, metadata={"description": "A journal's code."})
    date_from = ma.fields.Date(data_key="from")
    date_to = ma.fields.Date(data_key="to")
    account = String(validate=CODE, metadata={"description": "Entries with a line on this account (its code)."})
    partner_id = id_field(metadata={"description": "Entries with a line naming this partner."})
    source = String(validate=ma.validate.OneOf(ENTRY_SOURCES))
    reference = String(validate=ma.validate.Length(max=200), metadata={"description": "Part of the reference."})


class EntryReverseSchema(ma.Schema):
    date = ma.fields.Date(validate=DATE_RANGE, metadata={"description": "Default today; after the lock date."})


ENTRY_LOADS = (
    selectinload(Entry.journal),
    selectinload(Entry.lines).selectinload(EntryLine.account),
)


def _reversals(entry_ids: list[int]) -> dict[int, int]:
    """For each entry id, the entry reversing it (one query for a page)."""
    if not entry_ids:
        return {}
    rows = db.session.execute(
        sa.select(Entry.reversed_entry_id, Entry.id).where(Entry.reversed_entry_id.in_(entry_ids))
    )
    return dict(rows.all())


def _dump_entry(entry: Entry, reversed_by: dict[int, int]) -> dict[str, Any]:
    fields = ("id", "number", "date", "reference", "memo", "source", "source_id", "reversed_entry_id", "created_at")
    lines = [
        {
            "id": line.id,
            "account": line.account.code,
            "account_name": line.account.name(),
            "partner_id": line.partner_id,
            "label": line.label,
            "debit": line.debit,
            "credit": line.credit,
            "invoice_id": line.invoice_id,
            "bill_id": line.bill_id,
            "due_date": line.due_date,
            "vat_rate": line.vat_rate,
            "vat_base": line.vat_base,
        }
        for line in entry.lines
    ]
    return {
        **{name: getattr(entry, name) for name in fields},
        "journal": entry.journal.code,
        "created_by_id": entry.created_by,
        "reversed_by_id": reversed_by.get(entry.id),
        "debit_total": sum((line.debit for line in entry.lines), ZERO),
        "credit_total": sum((line.credit for line in entry.lines), ZERO),
        "lines": lines,
    }


def _entry_query(entry_id: int) -> sa.Select:
    return sa.select(Entry).where(Entry.id == entry_id).options(*ENTRY_LOADS)


def _line_specs(lines: list[dict[str, Any]]) -> list[ledger.LineSpec]:
    return [
        ledger.LineSpec(
            account=line["account"].strip().upper(),
            debit=line.get("debit") or ZERO,
            credit=line.get("credit") or ZERO,
            partner_id=line.get("partner_id"),
            label=line.get("label") or "",
            due_date=line.get("due_date"),
        )
        for line in lines
    ]


@entries_blp.route("")
class Entries(MethodView):
    @require(VIEW)
    @entries_blp.arguments(EntryListArgs, location="query")
    @entries_blp.response(200, page_schema(EntrySchema))
    def get(self, args: dict[str, Any]):
        """List entries

        Ordered by date, then id (the order they were posted in on that day), with their lines.
        """
        query = sa.select(Entry).options(*ENTRY_LOADS).order_by(Entry.date, Entry.id)
        if args.get("journal"):
            query = query.join(Journal, Journal.id == Entry.journal_id).where(
                Journal.code == args["journal"].strip().upper()
            )
        if args.get("date_from"):
            query = query.where(Entry.date >= args["date_from"])
        if args.get("date_to"):
            query = query.where(Entry.date <= args["date_to"])
        if args.get("source"):
            query = query.where(Entry.source == args["source"])
        if args.get("reference"):
            query = query.where(contains(Entry.reference, args["reference"]))
        lines = sa.select(EntryLine.entry_id)
        if args.get("account"):
            code = args["account"].strip().upper()
            lines = lines.join(Account, Account.id == EntryLine.account_id).where(Account.code == code)
        if args.get("partner_id"):
            lines = lines.where(EntryLine.partner_id == args["partner_id"])
        if args.get("account") or args.get("partner_id"):
            query = query.where(Entry.id.in_(lines))
        page = paginate(query, args)
        reversed_by = _reversals([entry.id for entry in page["items"]])
        return {**page, "items": [_dump_entry(entry, reversed_by) for entry in page["items"]]}

    @require(EDIT)
    @entries_blp.arguments(EntryInSchema)
    @entries_blp.response(201, EntrySchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Post a manual entry

        Numbered in its journal at once. `422` naming the problem, nothing written: debits not equal to credits
        (`lines`), a line with both a debit and a credit or neither, an unknown or group account, a partner missing
        on an account that needs one (`lines.N.partner_id`), a date on or before the lock date (`date`), an unknown
        journal (`journal`).
        """
        with committing():
            entry = manual.post_manual(
                data.get("journal"),
                data["date"],
                _line_specs(data["lines"]),
                reference=data.get("reference") or "",
                memo=data.get("memo"),
                user_id=api_user().id,
            )
        created = get_or_404(_entry_query(entry.id))
        location = url_for("accounting_api_entries.EntryItem", entry_id=entry.id)
        return _dump_entry(created, {}), 201, {"Location": location}


@entries_blp.route(f"/<{ID_PATH}:entry_id>")
class EntryItem(MethodView):
    @require(VIEW)
    @entries_blp.response(200, EntrySchema)
    @entries_blp.alt_response(404, response="NOT_FOUND")
    def get(self, entry_id: int):
        """Read an entry"""
        entry = get_or_404(_entry_query(entry_id))
        return _dump_entry(entry, _reversals([entry.id]))


@entries_blp.route(f"/<{ID_PATH}:entry_id>/reverse")
class EntryReverse(MethodView):
    @require(EDIT)
    @entries_blp.arguments(EntryReverseSchema)
    @entries_blp.response(201, EntrySchema, headers={"Location": {"schema": {"type": "string"}}})
    @entries_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], entry_id: int):
        """Reverse an entry

        Posts the same lines with debits and credits swapped (source `reversal`) in the same journal, dated `date`
        (default today). Only manual and opening entries: a document's entry is undone from its document (a credit
        note, cancelling the payment). `422` (field `entry`) when it is a document's, already reversed or itself a
        reversal; `date` when that is on or before the lock date.
        """
        entry = get_or_404(_entry_query(entry_id))
        with committing():
            reverse = manual.reverse_by_hand(entry, data.get("date"), user_id=api_user().id)
        created = get_or_404(_entry_query(reverse.id))
        location = url_for("accounting_api_entries.EntryItem", entry_id=reverse.id)
        return _dump_entry(created, {}), 201, {"Location": location}
