"""Accounting back office, the ledger's entries: the list (by number, newest first), an entry's page with its lines,
the document it records and its reversal, the "Reverse" button, and the manual entry form."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import DateBetweenFilter, FilterEqual, FilterLike
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import arg_id
from core.db import db
from core.models import Partner
from core.validation import Checker, ValidationError
from modules.accounting import accounts, ledger, manual
from modules.accounting.admin import ENTRY_SOURCE_LABELS, AccountingView, form_int, money
from modules.accounting.models import (
    ZERO,
    Account,
    Entry,
    EntryLine,
    Journal,
    Payment,
    SupplierBill,
    VatSettlement,
)
from modules.invoicing.models import Invoice

# The model of the document each source names by `source_id`.
SOURCE_MODELS: dict[str, type] = {
    "invoice": Invoice,
    "payment": Payment,
    "bill": SupplierBill,
    "settlement": VatSettlement,
    "reversal": Entry,
}
FORM_ROWS = 4
MAX_ROWS = 40
AMOUNT_LIMIT = Decimal(10) ** 12
FIELD_LABELS = {
    "journal": _l("Journal"),
    "date": _l("Date"),
    "reference": _l("Reference"),
    "memo": _l("Memo"),
    "lines": _l("Lines"),
    "entry": _l("Entry"),
    "account": _l("Account"),
}


def last_lines(*where: Any, limit: int = 50) -> list[EntryLine]:
    """The newest lines matching `where`, with their entries, accounts and partners loaded at once."""
    return list(
        db.session.scalars(
            sa.select(EntryLine)
            .join(Entry, Entry.id == EntryLine.entry_id)
            .where(*where)
            .options(
                selectinload(EntryLine.entry),
                selectinload(EntryLine.account),
                selectinload(EntryLine.partner),
            )
            .order_by(Entry.date.desc(), Entry.id.desc(), EntryLine.id)
            .limit(limit)
        )
    )


def document_of(entry: Entry) -> Any:
    """The record an entry was posted from (kept for the page's request: `labels.preload_records` loads a list's)."""
    model = SOURCE_MODELS.get(entry.source)
    if model is None or entry.source_id is None:
        return None
    return labels.preload_records(model, [entry.source_id]).get(entry.source_id)


def _document_column(view: Any, context: Any, model: Entry, name: str) -> Any:
    return labels.record_link(document_of(model))


def _total_column(view: Any, context: Any, model: Entry, name: str) -> str:
    return money(view.totals().get(model.id, ZERO))


class EntryView(AccountingView):
    """Every posted entry, newest first; never edited. Its page shows the lines with their accounts, partners and
    documents; a manual entry is reversed from there, and the form posts a new one."""

    allow_edit = False
    details_template = "accounting/admin/entry_details.html"
    column_list = ("number", "date", "journal", "reference", "source", "document", "total", "created_by")
    column_details_list = (
        "number",
        "date",
        "journal",
        "reference",
        "source",
        "document",
        "memo",
        "reversed_entry",
        "created_by",
        "created_at",
    )
    column_export_list = ("number", "date", "journal", "reference", "source", "total", "memo")
    column_labels = {
        "number": _l("Number"),
        "date": _l("Date"),
        "journal": _l("Journal"),
        "reference": _l("Reference"),
        "source": _l("Posted from"),
        "document": _l("Document"),
        "total": _l("Amount"),
        "memo": _l("Memo"),
        "reversed_entry": _l("Reverses"),
        "created_by": _l("By"),
    }
    column_enums = {"source": "accounting_entry.source"}
    column_formatters = {"document": _document_column, "total": _total_column}
    column_formatters_detail = {"document": _document_column}
    column_formatters_export = {"total": lambda view, context, model, name: view.totals().get(model.id, ZERO)}
    column_filters = (
        FilterEqual(Entry.source, _l("Posted from"), options=list(ENTRY_SOURCE_LABELS.items())),
        FilterLike("journal.code", _l("Journal")),
        FilterLike(Entry.reference, _l("Reference")),
        DateBetweenFilter(Entry.date, _l("Date")),
    )
    column_searchable_list = ("number", "reference")
    column_sortable_list = ("number", "date", "reference", "source")
    column_default_sort = [("date", True), ("id", True)]

    def get_query(self):
        return self._narrowed(super().get_query())

    def get_count_query(self):
        return self._narrowed(super().get_count_query())

    def _narrowed(self, query: Any) -> Any:
        """?account_id= and ?partner_id=: the entries with a line on that account or naming that partner."""
        lines = sa.select(EntryLine.entry_id)
        if (account_id := arg_id("account_id")) is not None:
            query = query.filter(Entry.id.in_(lines.where(EntryLine.account_id == account_id)))
        if (partner_id := arg_id("partner_id")) is not None:
            query = query.filter(Entry.id.in_(lines.where(EntryLine.partner_id == partner_id)))
        return query

    def preload_rows(self, rows: list[Any]) -> None:
        """The page's documents (one query per kind) and totals (one query) with its rows."""
        super().preload_rows(rows)
        for source, model in SOURCE_MODELS.items():
            labels.preload_records(model, [row.source_id for row in rows if row.source == source])
        from flask import g

        ids = [row.id for row in rows]
        found = db.session.execute(
            sa.select(EntryLine.entry_id, sa.func.sum(EntryLine.debit))
            .where(EntryLine.entry_id.in_(ids))
            .group_by(EntryLine.entry_id)
        )
        g.accounting_entry_totals = {entry_id: Decimal(total) for entry_id, total in found}

    @staticmethod
    def totals() -> dict[int, Decimal]:
        from flask import g

        return g.get("accounting_entry_totals", {})

    @expose("/")
    def index_view(self):
        narrowed = [
            record
            for record in (
                db.session.get(Account, arg_id("account_id")) if arg_id("account_id") else None,
                db.session.get(Partner, arg_id("partner_id")) if arg_id("partner_id") else None,
            )
            if record is not None
        ]
        if narrowed:
            flash(_("Showing the entries of %(what)s.", what=", ".join(map(labels.record_label, narrowed))), "info")
        return super().index_view()

    @expose("/details/")
    def details_view(self):
        entry = self.get_one(request.args.get("id", ""))
        if entry is None:
            abort(404)
        lines = db.session.scalars(
            sa.select(EntryLine)
            .where(EntryLine.entry_id == entry.id)
            .options(selectinload(EntryLine.account), selectinload(EntryLine.partner))
            .order_by(EntryLine.id)
        ).all()
        reversed_by = ledger.entry_for("reversal", entry.id)
        document = document_of(entry)
        self._template_args.update(
            lines=lines,
            invoices=labels.preload_records(Invoice, [line.invoice_id for line in lines]),
            bills=labels.preload_records(SupplierBill, [line.bill_id for line in lines]),
            debit=sum((line.debit for line in lines), ZERO),
            credit=sum((line.credit for line in lines), ZERO),
            reversed_by=reversed_by,
            document_url=labels.record_url(document) if document is not None else None,
            can_reverse=self._can_edit() and reversed_by is None and entry.source in manual.REVERSIBLE_SOURCES,
            money=money,
            account_label=accounts.account_label,
            today=clock.today().isoformat(),
        )
        return super().details_view()

    @expose("/reverse/", methods=("POST",))
    def reverse(self):
        if not self._can_edit():
            abort(403)
        entry = self.get_one(request.args.get("id", ""))
        if entry is None:
            abort(404)

        def reverse() -> Entry:
            check = Checker()
            date = check.date("date", request.form.get("date"), required=False)
            check.raise_if_any()
            return manual.reverse_by_hand(entry, date, user_id=current_user.id)

        done = self.run_action(reverse, lambda made: _("Reversed by %(entry)s.", entry=made.number), FIELD_LABELS)
        return redirect(url_for(".details_view", id=done.id if done is not None else entry.id))

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        if not self.can_create:
            abort(403)
        errors: dict[str, str] = {}
        rows = min(MAX_ROWS, max(FORM_ROWS, form_int(request.values.get("rows"), FORM_ROWS)))
        if request.method == "POST" and request.form.get("more") is None:
            try:
                entry = self._post(rows)
            except ValidationError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                flash(_("Posted: %(entry)s.", entry=entry.number), "success")
                return redirect(url_for(".details_view", id=entry.id))
        elif request.method == "POST":
            rows = min(MAX_ROWS, rows + 2)
        values = request.form if request.method == "POST" else {"date": clock.today().isoformat(), "journal": "VAR"}
        return self.render(
            "accounting/admin/entry_form.html",
            rows=rows,
            values=values,
            errors=errors,
            labels=FIELD_LABELS,
            journals=db.session.scalars(
                sa.select(Journal).where(Journal.active.is_(True)).order_by(Journal.code)
            ).all(),
            accounts=accounts.postable_accounts(),
            partners=db.session.scalars(
                sa.select(Partner).where(Partner.active.is_(True)).order_by(Partner.name)
            ).all(),
            account_label=accounts.account_label,
        )

    def _post(self, rows: int) -> Entry:
        """The form's entry: its filled rows as lines (an empty row is skipped), amounts as typed (1234,50)."""
        form = request.form
        check = Checker()
        date = check.date("date", form.get("date"))
        reference = check.text("reference", form.get("reference"), 200) or ""
        memo = check.text("memo", form.get("memo"), 2000)
        lines: list[ledger.LineSpec] = []
        for row in range(rows):
            account = (form.get(f"account-{row}") or "").strip()
            debit_text = (form.get(f"debit-{row}") or "").strip()
            credit_text = (form.get(f"credit-{row}") or "").strip()
            if not (account or debit_text or credit_text):
                continue
            debit = check.decimal(f"debit-{row}", debit_text or "0", 2, AMOUNT_LIMIT)
            credit = check.decimal(f"credit-{row}", credit_text or "0", 2, AMOUNT_LIMIT)
            partner = (form.get(f"partner-{row}") or "").strip()
            if not account:
                check.fail(f"account-{row}", _("Choose an account."))
            lines.append(
                ledger.LineSpec(
                    account=account,
                    debit=debit or ZERO,
                    credit=credit or ZERO,
                    partner_id=int(partner) if partner.isdigit() and int(partner) < 2**31 else None,
                    label=(form.get(f"label-{row}") or "").strip()[:200],
                )
            )
        check.raise_if_any()
        return manual.post_manual(
            form.get("journal"), date, lines, reference=reference, memo=memo, user_id=current_user.id
        )
