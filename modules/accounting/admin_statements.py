"""Accounting back office: bank statements. The upload page with the statements imported, and a statement's page
with its lines and proposals, where staff confirm a line (one click, or every proposed line at once), confirm it
for another invoice, ignore it or reopen it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_currency, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import labels
from core.context import ModuleContext
from core.db import db
from core.models import Partner
from core.validation import ValidationError
from modules.accounting import statements
from modules.accounting.admin_payments import AccountingPage
from modules.accounting.models import BankStatement, Journal, Payment, StatementLine
from modules.accounting.statement_files import FORM_OVERHEAD, MAX_FILE_BYTES, PROFILES
from modules.invoicing.models import Invoice

PAGE_SIZE = 50
PROFILE_LABELS = {
    "it_movimenti": _l("Italian bank, movements list (Intesa Sanpaolo, UniCredit...)"),
    "generic": _l("Generic CSV (date, amount, description...)"),
}
FIELD_LABELS = {
    "file": _l("Statement file"),
    "journal": _l("Journal"),
    "profile": _l("CSV profile"),
    "format": _l("Format"),
    "state": _l("State"),
    "amount": _l("Amount"),
    "currency": _l("Currency"),
    "partner_id": _l("Customer"),
    "invoice_id": _l("Invoice"),
    "invoice": _l("Invoice"),
}


class StatementsView(AccountingPage):
    """Bank statements: upload, list, a statement's lines with their proposals and the actions on them."""

    def create_blueprint(self, admin: Any) -> Blueprint:
        blueprint = super().create_blueprint(admin)
        upload = f"{self.endpoint}.upload"

        @blueprint.url_value_preprocessor
        def _limit_upload(endpoint: str | None, values: Any) -> None:
            # Runs before every before_request function, so before CSRF reads the form: a body larger than the file
            # accepted plus its form is refused (413) unread.
            if endpoint == upload:
                request.max_content_length = MAX_FILE_BYTES + FORM_OVERHEAD

        return blueprint

    @expose("/")
    def index(self):
        query = (
            sa.select(BankStatement)
            .options(selectinload(BankStatement.journal))
            .order_by(BankStatement.imported_at.desc(), BankStatement.id.desc())
        )
        page = db.paginate(query, per_page=PAGE_SIZE, error_out=False)
        ids = [statement.id for statement in page.items]
        open_counts = statements.open_line_counts(ids)
        journals = db.session.scalars(
            sa.select(Journal).where(Journal.kind == "bank", Journal.active.is_(True)).order_by(Journal.code)
        ).all()
        return self.render(
            "accounting/admin/statements.html",
            page=page,
            open_counts=open_counts,
            journals=journals,
            profiles=[(code, PROFILE_LABELS.get(code, code)) for code in PROFILES],
            max_megabytes=MAX_FILE_BYTES // 1024 // 1024,
        )

    @expose("/upload", methods=["POST"])
    def upload(self):
        upload = request.files.get("file")
        raw = upload.stream.read(MAX_FILE_BYTES + 1) if upload else b""
        filename = (upload.filename if upload else "") or "statement"

        def action() -> statements.ImportResult:
            return statements.import_statement(
                raw,
                filename,
                journal=request.form.get("journal") or None,
                profile=request.form.get("profile") or None,
                user_id=current_user.id,
            )

        result = self.run_action(action, labels=FIELD_LABELS)
        if result is None:
            return redirect(url_for(".index"))
        if result.created:
            flash(
                _(
                    "%(file)s imported: %(added)d new lines, %(skipped)d imported before.",
                    file=filename,
                    added=result.added,
                    skipped=result.skipped,
                ),
                "success",
            )
        else:
            flash(_("Nothing new: every line of %(file)s was imported before.", file=filename), "info")
        if result.statement is None:
            return redirect(url_for(".index"))
        return redirect(url_for(".details", statement_id=result.statement.id))

    @expose("/<int:statement_id>")
    def details(self, statement_id: int):
        statement = db.get_or_404(BankStatement, statement_id)
        lines = statement.lines
        invoice_ids = {line.proposed_invoice_id for line in lines if line.proposed_invoice_id}
        partner_ids = {line.proposed_partner_id for line in lines if line.proposed_partner_id}
        payment_ids = {line.payment_id for line in lines if line.payment_id}
        invoices = {
            invoice.id: invoice for invoice in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(invoice_ids)))
        }
        partners = {
            partner.id: partner for partner in db.session.scalars(sa.select(Partner).where(Partner.id.in_(partner_ids)))
        }
        paid = {
            payment.id: payment
            for payment in db.session.scalars(
                sa.select(Payment)
                .options(selectinload(Payment.partner), selectinload(Payment.entry))
                .where(Payment.id.in_(payment_ids))
            )
        }
        return self.render(
            "accounting/admin/statement.html",
            statement=statement,
            lines=lines,
            invoices=invoices,
            partners=partners,
            payments=paid,
            proposed=sum(1 for line in lines if line.state == "open" and line.proposed_partner_id and line.amount > 0),
            profile_label=PROFILE_LABELS.get(statement.profile or "", statement.profile),
        )

    @expose("/<int:statement_id>/file")
    def download(self, statement_id: int):
        statement = db.get_or_404(BankStatement, statement_id)
        mimetype = "application/xml" if statement.format == "camt053" else "text/csv"
        safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in statement.filename) or "statement"
        return Response(
            statement.content,
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
        )

    @expose("/<int:statement_id>/confirm-all", methods=["POST"])
    def confirm_all(self, statement_id: int):
        statement = db.get_or_404(BankStatement, statement_id)
        result = statements.confirm_all(statement, user_id=current_user.id)
        db.session.commit()
        count = len(result.confirmed)
        flash(ngettext("%(num)d line confirmed.", "%(num)d lines confirmed.", count), "success")
        for message in result.refused.values():
            flash(message, "error")
        return redirect(url_for(".details", statement_id=statement.id))

    @expose("/<int:statement_id>/propose", methods=["POST"])
    def propose(self, statement_id: int):
        statement = db.get_or_404(BankStatement, statement_id)
        self.run_action(
            lambda: statements.propose(statement.lines),
            lambda count: _("Proposals worked out again: %(count)d lines with a customer.", count=count),
        )
        return redirect(url_for(".details", statement_id=statement.id))

    @expose("/lines/<int:line_id>/confirm", methods=["POST"])
    def confirm(self, line_id: int):
        line = db.get_or_404(StatementLine, line_id)

        def action() -> Payment:
            return statements.confirm(
                line,
                invoice_id=_invoice_typed(request.form.get("invoice", "")),
                advance=request.form.get("advance") == "1",
                user_id=current_user.id,
            )

        self.run_action(
            action,
            lambda payment: _("Payment recorded: %(number)s.", number=payment.entry.number),
            labels=FIELD_LABELS,
        )
        return redirect(url_for(".details", statement_id=line.statement_id, _anchor=f"line-{line.id}"))

    @expose("/lines/<int:line_id>/ignore", methods=["POST"])
    def ignore(self, line_id: int):
        line = db.get_or_404(StatementLine, line_id)
        self.run_action(lambda: statements.ignore(line), _("Line ignored."), labels=FIELD_LABELS)
        return redirect(url_for(".details", statement_id=line.statement_id, _anchor=f"line-{line.id}"))

    @expose("/lines/<int:line_id>/reopen", methods=["POST"])
    def reopen(self, line_id: int):
        line = db.get_or_404(StatementLine, line_id)
        self.run_action(lambda: statements.reopen(line), _("Line open again."), labels=FIELD_LABELS)
        return redirect(url_for(".details", statement_id=line.statement_id, _anchor=f"line-{line.id}"))


def _invoice_typed(number: str) -> int | None:
    """The posted invoice typed by its number ("12/2026"); None when nothing is typed (the proposal stands)."""
    number = number.strip()
    if not number:
        return None
    invoice_id = db.session.scalar(
        sa.select(Invoice.id).where(Invoice.number == number[:20], Invoice.type == "invoice", Invoice.state == "posted")
    )
    if invoice_id is None:
        raise ValidationError({"invoice": _("No posted invoice %(number)s.", number=number[:40])})
    return invoice_id


def _line_label(line: StatementLine) -> str:
    amount = format_currency(line.amount, line.currency or "EUR")
    return " · ".join(part for part in (labels.local_date(line.date), amount, line.counterparty) if part)


def register(ctx: ModuleContext) -> None:
    """The bank statements pages; statements and their lines link to them."""
    ctx.add_admin_view(StatementsView(name=_l("Bank statements"), endpoint="accounting_statements"))
    labels.register_record(
        ctx.app,
        BankStatement,
        lambda statement: statement.filename,
        url=lambda statement: url_for("accounting_statements.details", statement_id=statement.id),
    )
    labels.register_record(
        ctx.app,
        StatementLine,
        _line_label,
        url=lambda line: url_for(
            "accounting_statements.details", statement_id=line.statement_id, _anchor=f"line-{line.id}"
        ),
    )
