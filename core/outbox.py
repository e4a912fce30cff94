"""The transactional mail outbox: emails stored with the change that causes them, sent by a job after commit."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click
import sqlalchemy as sa
from babel import Locale
from flask import Flask, current_app, flash, redirect, render_template, request, send_file, url_for
from flask.cli import AppGroup
from flask_admin import expose
from flask_babel import force_locale, format_datetime, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_mail import Message
from jinja2 import Template, TemplateNotFound
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from core import jobs, signals
from core.admin import SecuredView
from core.db import db, savepoint_committed, utcnow
from core.extensions import mail
from core.models import Company, OutboxAttachment, OutboxMessage

log = logging.getLogger(__name__)

STATUSES = ("pending", "failed", "kept", "sent")
STATUS_LABELS = {"pending": _l("pending"), "failed": _l("failed"), "kept": _l("kept"), "sent": _l("sent")}
RESENDABLE = ("failed", "kept")
KEPT_NOTE = "No mail server is configured (MAIL_SERVER): the message is kept in the outbox."
# Syntax only: a dealer's own mail server may deliver to local domains (`.local`) a stricter check would refuse.
ADDRESS_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_QUEUED = "outbox_queued"  # session.info key: messages to hand to the job queue once the transaction commits


def mail_language(language: str | None) -> str:
    """One of the app's LANGUAGES: `it_IT` and `it-IT` become `it`; anything unknown falls back to the default."""
    code = (language or "").replace("-", "_").split("_")[0].lower()
    return code if code in current_app.config["LANGUAGES"] else current_app.config["BABEL_DEFAULT_LOCALE"]


def _valid_recipients(recipients: str | Iterable[str]) -> list[str]:
    addresses = [recipients] if isinstance(recipients, str) else list(recipients)
    if not addresses:
        raise ValueError(_("An email needs at least one recipient"))
    clean = [address.strip() if isinstance(address, str) else address for address in addresses]
    for address in clean:
        if not isinstance(address, str) or not ADDRESS_RE.match(address):
            raise ValueError(_("%(address)s is not a valid email address", address=address))
    return clean


def _optional_template(name: str) -> Template | None:
    try:
        return current_app.jinja_env.get_template(name)
    except TemplateNotFound as exc:
        if exc.name != name:  # the template exists but includes a missing one: a real error
            raise
        return None


def render_email(template: str, language: str, context: dict[str, Any] | None = None) -> tuple[str, str, str | None]:
    """Subject, text body and optional HTML body of `mail/<template>.*`, written in `language`."""
    with force_locale(language):
        with db.session.no_autoflush:
            company = db.session.scalar(db.select(Company).order_by(Company.id).limit(1))
        values = {"company": company, "locale": get_locale(), "language": language, **(context or {})}
        subject = " ".join(render_template(f"mail/{template}.subject.txt", **values).split())[:300]
        text = render_template(f"mail/{template}.txt", **values)
        html_template = _optional_template(f"mail/{template}.html")
        html = render_template(html_template, subject=subject, **values) if html_template else None
    return subject, text, html


def queue_email(
    recipients: str | Iterable[str],
    template: str,
    language: str | None,
    context: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] | None = None,
) -> OutboxMessage:
    """Add an email to the current transaction; it is sent by a job once that transaction commits.

    With a `dedupe_key` already used, the existing message is returned and nothing is added.
    Attachments are (filename, mimetype, content) tuples.
    """
    if dedupe_key is not None:
        existing = db.session.scalar(db.select(OutboxMessage).filter_by(dedupe_key=dedupe_key))
        if existing is not None:
            return existing
    addresses = _valid_recipients(recipients)
    language = mail_language(language)
    subject, text, html = render_email(template, language, context)
    message = OutboxMessage(
        recipients=addresses,
        subject=subject,
        body_text=text,
        body_html=html,
        language=language,
        template=template,
        dedupe_key=dedupe_key,
        status="pending",
        attempts=0,
        attachments=[
            OutboxAttachment(filename=filename, mimetype=mimetype, content=content)
            for filename, mimetype, content in attachments or ()
        ],
    )
    db.session.add(message)
    db.session.info.setdefault(_QUEUED, []).append(message)
    return message


def requeue(message: OutboxMessage) -> None:
    """Put a failed or kept message back in line: it is sent again once the current transaction commits."""
    message.status = "pending"
    db.session.info.setdefault(_QUEUED, []).append(message)


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    if savepoint_committed(session):
        return
    for message in session.info.pop(_QUEUED, []):
        state = sa.inspect(message)
        if not state.persistent:  # rolled back inside a savepoint
            continue
        message_id = state.identity[0]
        try:
            jobs.enqueue(send_message, message_id, job_id=f"mail:{message_id}")
        except Exception as exc:
            # The commit has happened: report, and leave the message for `flask outbox send-pending`.
            log.warning("outbox message %s was not sent: %s", message_id, exc)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested:
        session.info.pop(_QUEUED, None)


def _mail_message(message: OutboxMessage) -> Message:
    mail_message = Message(
        subject=message.subject,
        recipients=list(message.recipients),
        body=message.body_text,
        html=message.body_html,
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
    )
    for attachment in message.attachments:
        mail_message.attach(attachment.filename, attachment.mimetype, attachment.content)
    return mail_message


def send_message(message_id: int) -> None:
    """The job: hand one outbox message to the mail server. A message already sent is not sent again."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # A session of its own: inline jobs run inside the caller's after_commit, where its session emits no SQL.
    with Session(db.engine, expire_on_commit=False) as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status == "sent":
            return
        if not app.config.get("MAIL_SERVER"):
            message.status, message.last_error = "kept", KEPT_NOTE
            session.commit()
            return
        message.attempts += 1
        try:
            mail.send(_mail_message(message))
        except Exception as exc:
            message.status, message.last_error = "failed", f"{exc.__class__.__name__}: {exc}"
            session.commit()
            raise
        message.status, message.sent_at, message.last_error = "sent", utcnow(), None
        session.commit()
    signals.email_sent.send(app, message_id=message_id)


def _language_name(code: str) -> str:
    try:
        return Locale.parse(code).get_display_name(get_locale()) or code
    except (ValueError, TypeError):
        return code


class OutboxView(SecuredView):
    """Every email the app wrote, as a mailbox: where a newcomer reads mail while no server is configured."""

    permission = "outbox.view"
    page_size = 50

    def _render(self, template: str, **values: Any):
        return self.render(
            template,
            status_labels=STATUS_LABELS,
            format_datetime=format_datetime,
            mail_server=current_app.config.get("MAIL_SERVER"),
            **values,
        )

    @expose("/")
    def index(self):
        status = request.args.get("status")
        status = status if status in STATUSES else None
        search = request.args.get("q", "").strip()
        query = db.select(OutboxMessage)
        if status:
            query = query.where(OutboxMessage.status == status)
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                sa.or_(
                    OutboxMessage.subject.ilike(pattern, escape="\\"),
                    sa.cast(OutboxMessage.recipients, sa.String).ilike(pattern, escape="\\"),
                )
            )
        query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        page = db.paginate(query, per_page=self.page_size, error_out=False)
        counts = dict(
            db.session.execute(db.select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)).all()
        )
        attachment_counts = dict(
            db.session.execute(
                db.select(OutboxAttachment.message_id, sa.func.count())
                .where(OutboxAttachment.message_id.in_([m.id for m in page.items]))
                .group_by(OutboxAttachment.message_id)
            ).all()
        )
        return self._render(
            "admin/outbox.html",
            page=page,
            attachment_counts=attachment_counts,
            status=status,
            search=search,
            counts=counts,
            total=sum(counts.values()),
            statuses=STATUSES,
        )

    @expose("/<int:message_id>")
    def details(self, message_id: int):
        message = db.get_or_404(OutboxMessage, message_id)
        return self._render(
            "admin/outbox_details.html",
            message=message,
            language_name=_language_name(message.language),
            sender=current_app.config["MAIL_DEFAULT_SENDER"],
            can_resend=message.status in RESENDABLE,
        )

    @expose("/<int:message_id>/attachments/<int:attachment_id>")
    def attachment(self, message_id: int, attachment_id: int):
        attachment = db.first_or_404(
            db.select(OutboxAttachment).filter_by(id=attachment_id, message_id=message_id),
        )
        response = send_file(
            io.BytesIO(attachment.content),
            mimetype=attachment.mimetype,
            as_attachment=True,
            download_name=attachment.filename,
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @expose("/<int:message_id>/send", methods=("POST",))
    def resend(self, message_id: int):
        message = db.get_or_404(OutboxMessage, message_id)
        if message.status not in RESENDABLE:
            flash(_("Only a failed or kept email can be sent again."), "warning")
            return redirect(url_for(".details", message_id=message_id))
        requeue(message)
        db.session.commit()
        outcome = {
            "sent": (_("The email was sent."), "success"),
            "kept": (_("No mail server is configured: the email is kept here."), "info"),
            "failed": (_("Sending failed: %(error)s", error=message.last_error), "error"),
        }.get(message.status, (_("The email is queued: a worker sends it shortly."), "info"))
        flash(*outcome)
        return redirect(url_for(".details", message_id=message_id))


outbox_cli = AppGroup("outbox", help="The mail outbox: send what is waiting, check the mail server.")


@outbox_cli.command("send-pending")
@click.option("--include-kept", is_flag=True, help="Also send the emails kept while no mail server was configured.")
def send_pending(include_kept: bool) -> None:
    """Send every pending and failed email now (for example after configuring MAIL_SERVER)."""
    wanted = ("pending", "failed", "kept") if include_kept else ("pending", "failed")
    ids = db.session.scalars(
        db.select(OutboxMessage.id).where(OutboxMessage.status.in_(wanted)).order_by(OutboxMessage.id)
    ).all()
    for message_id in ids:
        try:
            send_message(message_id)
        except Exception as exc:
            click.echo(f"email {message_id}: {exc}", err=True)
    if not ids:
        click.echo("Nothing to send.")
        return
    outcome = dict(
        db.session.execute(
            db.select(OutboxMessage.status, sa.func.count())
            .where(OutboxMessage.id.in_(ids))
            .group_by(OutboxMessage.status)
        ).all()
    )
    click.echo(", ".join(f"{status}: {outcome[status]}" for status in STATUSES if status in outcome))
    if outcome.get("failed"):
        raise click.ClickException(f"{outcome['failed']} email(s) failed; see the outbox page for the errors")


@outbox_cli.command("test")
@click.argument("email")
@click.option("--language", default=None, help="it, en or es (default: the app's default language).")
def send_test(email: str, language: str | None) -> None:
    """Queue and send a test email to EMAIL."""
    try:
        message = queue_email([email], "core/test", language, context={"sent_on": utcnow()})
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    db.session.commit()
    if message.status == "sent":
        click.echo(f"Test email sent to {email}.")
    elif message.status == "kept":
        click.echo(f"No mail server is configured (MAIL_SERVER): the test email is kept in the outbox (#{message.id}).")
    elif message.status == "failed":
        raise click.ClickException(f"sending failed: {message.last_error}")
    else:
        click.echo(f"Test email queued as job mail:{message.id}; a worker sends it.")


def init_app(app: Flask) -> None:
    app.extensions["copydesk"].admin.add_view(
        OutboxView(name=_l("Outbox"), endpoint="core_outbox", url="outbox", category=_l("Settings"))
    )
    app.cli.add_command(outbox_cli)
