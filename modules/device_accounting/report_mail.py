"""The monthly usage report emailed, with its PDF, to the customer admins who asked for it in the portal."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import force_locale, format_date, format_percent
from sqlalchemy.orm import selectinload

from core.auth.scoping import confined_customer
from core.auth.services import external_url, user_language
from core.db import db
from core.models import Partner
from core.outbox import queue_email
from core.permissions import has_permission
from modules.device_accounting import reports
from modules.device_accounting.models import ReportSubscription
from modules.device_accounting.portal import money4

# The report sent is of every user and cost center, grouped by cost center (the tree a customer admin reads first).
GROUP_BY = "cost_center"


def report_month(today: dt.date) -> tuple[dt.date, dt.date]:
    """The month before `today`'s: its first and last day."""
    last = today.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


def send_due(today: dt.date) -> int:
    """Queue last month's report for every subscribed customer admin who has not had it yet; returns how many.

    Each subscription gets each month once (`last_sent_month`, and the outbox's dedupe key should a run be repeated
    before committing). A subscriber who is no longer an active customer admin of that customer gets nothing; the
    subscription stays, and works again if they are made admin again. The caller commits.
    """
    since, until = report_month(today)
    due = db.session.scalars(
        sa.select(ReportSubscription)
        .options(selectinload(ReportSubscription.user))
        .where(sa.or_(ReportSubscription.last_sent_month.is_(None), ReportSubscription.last_sent_month < since))
        .order_by(ReportSubscription.customer_id, ReportSubscription.user_id)
    ).all()
    customers = {
        partner.id: partner
        for partner in db.session.scalars(sa.select(Partner).where(Partner.id.in_({s.customer_id for s in due})))
    }
    sent = 0
    for subscription in due:
        user = subscription.user
        if not has_permission(user, "portal.print_accounting") or confined_customer(user) != subscription.customer_id:
            continue
        send_report(subscription, customers[subscription.customer_id], since, until)
        sent += 1
    return sent


def send_report(subscription: ReportSubscription, customer: Partner, since: dt.date, until: dt.date) -> None:
    """Queue the report of `since`..`until` to the subscriber, in their language, the PDF attached."""
    user = subscription.user
    language = user_language(user)
    with force_locale(language):
        report = reports.summary(customer.id, since, until)
        pdf = reports.usage_pdf(customer.id, GROUP_BY, since, until)
        filename = reports.export_filename(since, until, "pdf")
        month = format_date(since, "LLLL yyyy")
        share = None if report["colour_share"] is None else format_percent(report["colour_share"], "#,##0.0%")
    link = external_url("device_accounting_portal.reports_page", since=since.isoformat(), until=until.isoformat())
    queue_email(
        [user.email],
        "device_accounting/monthly_report",
        language,
        {
            "user": user,
            "customer": customer,
            "month": month,
            "report": report,
            "share": share,
            "link": link,
            "money": money4,  # rendered in the email's language: 4,485 € stays 4,485 €
        },
        dedupe_key=f"device-accounting-report:{user.id}:{since.isoformat()}",
        attachments=[(filename, "application/pdf", pdf)],
    )
    subscription.last_sent_month = since
