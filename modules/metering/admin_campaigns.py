"""The staff's campaign board (reading requests: sent, opened, completed, overdue; resend) and reading schedules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core import clock
from core.admin import SecuredModelView, SecuredView
from core.db import contains, db
from core.models import OutboxMessage, Partner
from core.outbox import STATUS_LABELS as OUTBOX_LABELS
from core.permissions import has_permission
from modules.metering import campaigns
from modules.metering.admin import STATUS_LABELS as READING_LABELS
from modules.metering.models import SCHEDULE_RULES, ReadingRequest

# What the board filters on: "opened" is a pending request whose link has been opened.
BOARD_STATUSES = ("pending", "opened", "completed", "overdue")
BOARD_LABELS = {
    "pending": _l("waiting"),
    "opened": _l("opened"),
    "completed": _l("completed"),
    "overdue": _l("overdue"),
}
# What became of the requests' emails, said as it is: the outbox keeps mail when no mail server is configured.
EMAIL_LABELS = {
    "sent": _l("emailed"),
    "kept": _l("kept in the outbox (no mail server configured)"),
    "pending": _l("waiting to be sent"),
    "failed": _l("failed to send"),
    "none": _l("not sent: no email address"),
}
RULE_LABELS = {
    "last_working_day": _l("Last working day of the period"),
    "period_end": _l("Last day of the period"),
    "days_before_end": _l("Some days before the period ends"),
}


def _email_outcomes(scope: Any) -> dict[str, int]:
    """What became of the first email of the requests in `scope`, by the outbox's status; `none` for requests that
    have no email (no address to write to)."""
    first_email = OutboxMessage.dedupe_key == sa.literal("reading-request:") + sa.cast(ReadingRequest.id, sa.String)
    rows = db.session.execute(
        sa.select(OutboxMessage.status, sa.func.count())
        .select_from(ReadingRequest)
        .join(Partner, Partner.id == ReadingRequest.customer_id)
        .outerjoin(OutboxMessage, first_email)
        .where(scope)
        .group_by(OutboxMessage.status)
    )
    return {status or "none": count for status, count in rows.all() if count}


def _status_filter(status: str | None) -> Any:
    if status == "opened":
        return sa.and_(ReadingRequest.status == "pending", ReadingRequest.opened_at.is_not(None))
    if status in ("pending", "completed", "overdue"):
        return ReadingRequest.status == status
    return sa.true()


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


class CampaignView(SecuredView):
    """Reading requests with their counts and filters; staff with readings.edit resend one with a click."""

    permission = "readings.view"
    page_size = 50

    @expose("/")
    def index(self):
        status = request.args.get("status")
        status = status if status in BOARD_STATUSES else None
        search = request.args.get("q", "").strip()[:100]
        due_from, due_to = _date(request.args.get("from")), _date(request.args.get("to"))
        scope = sa.true()
        if search:
            scope = sa.and_(scope, contains(Partner.name, search))
        if due_from:
            scope = sa.and_(scope, ReadingRequest.due_date >= due_from)
        if due_to:
            scope = sa.and_(scope, ReadingRequest.due_date <= due_to)
        base = sa.select(ReadingRequest).join(Partner, Partner.id == ReadingRequest.customer_id).where(scope)
        counts = {
            name: db.session.scalar(
                sa.select(sa.func.count())
                .select_from(ReadingRequest)
                .join(Partner, Partner.id == ReadingRequest.customer_id)
                .where(scope, _status_filter(name))
            )
            for name in BOARD_STATUSES
        }
        emails = _email_outcomes(scope)
        query = base.where(_status_filter(status)).order_by(ReadingRequest.due_date.desc(), ReadingRequest.id.desc())
        page = db.paginate(query, per_page=self.page_size, error_out=False)
        return self.render(
            "metering/admin/campaigns.html",
            page=page,
            counts=counts,
            emails=emails,
            email_labels=EMAIL_LABELS,
            outbox_labels=OUTBOX_LABELS,
            total=sum(counts[name] for name in ("pending", "completed", "overdue")),
            status=status,
            search=search,
            due_from=due_from,
            due_to=due_to,
            statuses=BOARD_STATUSES,
            labels=BOARD_LABELS,
            reading_labels=READING_LABELS,
            messages=campaigns.request_messages(r.id for r in page.items),
            can_edit=has_permission(current_user, "readings.edit"),
            can_outbox=has_permission(current_user, "outbox.view"),
            format_datetime=format_datetime,
            open_items=campaigns.open_items,
        )

    @expose("/<int:request_id>/resend", methods=("POST",))
    def resend(self, request_id: int):
        if not has_permission(current_user, "readings.edit"):
            abort(403)
        reading_request = db.get_or_404(ReadingRequest, request_id)
        if reading_request.status == "completed":
            flash(_("This request is complete: there is nothing to ask again."), "warning")
        elif campaigns.resend(reading_request, clock.today()) is None:
            flash(_("%(customer)s has no email address for readings.", customer=reading_request.customer), "error")
        else:
            flash(_("The request was emailed again to %(customer)s.", customer=reading_request.customer), "success")
        db.session.commit()
        return redirect(url_for(".index"))

    @expose("/customer/<int:customer_id>/ask-now", methods=("POST",))
    def ask_now(self, customer_id: int):
        """Email the customer a request for the current periods' counters now, before their due date."""
        if not has_permission(current_user, "readings.edit"):
            abort(403)
        customer = db.get_or_404(Partner, customer_id)
        created = campaigns.request_now(customer.id, clock.today())
        db.session.commit()
        if created:
            flash(_("%(customer)s was asked for the counters now.", customer=customer.name), "success")
        else:
            flash(
                _(
                    "Nothing to ask %(customer)s now: every current period has its reading or its request.",
                    customer=customer.name,
                ),
                "info",
            )
        return redirect(url_for(".index", q=customer.name))


class ScheduleView(SecuredModelView):
    """The day of each period a contract's readings are requested, when it is not the last working day."""

    permission = "readings.view"
    edit_permission = "contracts.edit"
    column_list = ("contract", "contract.customer.name", "rule", "days")
    column_labels = {
        "contract": _l("Contract"),
        "contract.customer.name": _l("Customer"),
        "rule": _l("Request readings on"),
        "days": _l("Days before the end"),
    }
    column_formatters = {"rule": lambda view, context, model, name: RULE_LABELS.get(model.rule, model.rule)}
    form_columns = ("contract", "rule", "days")
    form_choices = {"rule": [(rule, RULE_LABELS[rule]) for rule in SCHEDULE_RULES]}
    form_args = {"days": {"default": 0}}
    column_searchable_list = ("contract.number",)
