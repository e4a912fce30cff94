"""The transactional mail outbox: emails stored with the change that causes them, sent by a job after commit."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from email.utils import formataddr, parseaddr
from typing import Any
from urllib.parse import urlsplit

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
from markupsafe import escape
from sqlalchemy.orm import Session

from core import jobs, signals
from core.admin import SecuredView
from core.crypto import SealBroken, seal, unseal
from core.db import contains, db, on_commit, utcnow
from core.extensions import mail
from core.models import Company, OutboxAttachment, OutboxMessage

log = logging.getLogger(__name__)

STATUSES = ("pending", "failed", "kept", "sent")
STATUS_LABELS = {"pending": _l("pending"), "failed": _l("failed"), "kept": _l("kept"), "sent": _l("sent")}
RESENDABLE = ("pending", "failed", "kept")
KEPT_NOTE = "No mail server is configured (MAIL_SERVER): the message is kept in the outbox."
# Seconds before each automatic retry (MAIL_RETRY_SCHEDULE): 1m, 5m, 15m, 1h, 3h, 6h, 12h, 24h, about two days in all.
DEFAULT_RETRY_SCHEDULE = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
REDACTED = "••••••"
# Syntax only: a dealer's own mail server may deliver to local domains (`.local`) a stricter check would refuse.
ADDRESS_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


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


def redact(value: str) -> str:
    """What the outbox shows of a secret: a link keeps its site and path, its last part (the token) becomes dots."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}{parts.path.rpartition('/')[0]}/{REDACTED}"
    return REDACTED


# The derivation label of the key that seals an email's links (unchanged, so older messages still open).
SEAL_PURPOSE = "outbox secrets"


def _redactions(secrets: dict[str, str]) -> dict[str, str]:
    """Each secret's redacted text, made unique so that sending puts every secret back in its own place."""
    shown: dict[str, str] = {}
    for key, value in secrets.items():
        text, number = redact(value), 1
        while text in shown.values():
            number += 1
            text = f"{redact(value)}{number}"
        shown[key] = text
    return shown


def _seal(pairs: list[tuple[str, str]]) -> str:
    return seal(json.dumps(pairs), SEAL_PURPOSE)


def _unseal(message: OutboxMessage) -> list[tuple[str, str]]:
    """(redacted, real) pairs of the message; raises ValueError when they cannot be decrypted."""
    if not message.sealed_secrets:
        return []
    try:
        return [tuple(pair) for pair in json.loads(unseal(message.sealed_secrets, SEAL_PURPOSE))]
    except SealBroken:
        raise ValueError("the links of this email cannot be decrypted (was SECRET_KEY changed?)") from None


def _reveal(text: str | None, pairs: list[tuple[str, str]], html: bool = False) -> str | None:
    # Longest first: "…/••••••2" must not be taken for "…/••••••" followed by a 2.
    for shown, real in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        if text is not None:
            text = text.replace(str(escape(shown)), str(escape(real))) if html else text.replace(shown, real)
    return text


def _scrub(text: str, pairs: list[tuple[str, str]]) -> str:
    """`text` (an error message) with any secret replaced by its redacted form."""
    for shown, real in pairs:
        text = text.replace(real, shown).replace(str(escape(real)), shown)
    return text


def retry_schedule() -> Sequence[int]:
    return current_app.config.get("MAIL_RETRY_SCHEDULE") or DEFAULT_RETRY_SCHEDULE


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
    secrets: dict[str, str] | None = None,
) -> OutboxMessage:
    """Add an email to the current transaction; it is sent by a job once that transaction commits.

    With a `dedupe_key` already used, the existing message is returned and nothing is added.
    Attachments are (filename, mimetype, content) tuples. `secrets` are context values that grant access (reset and
    reading links): the stored email, which staff can read in the outbox, shows them redacted (`redact`); the real
    values are kept encrypted, put into the email only when it is sent, then wiped.
    """
    if dedupe_key is not None:
        existing = db.session.scalar(db.select(OutboxMessage).filter_by(dedupe_key=dedupe_key))
        if existing is not None:
            return existing
    addresses = _valid_recipients(recipients)
    language = mail_language(language)
    shown = _redactions(secrets or {})
    subject, text, html = render_email(template, language, {**(context or {}), **shown})
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
        # A safety net: if the job that sends it after commit is lost, the worker's sweep sends it then.
        next_attempt_at=utcnow() + dt.timedelta(seconds=retry_schedule()[0]),
        sealed_secrets=_seal([(shown[key], value) for key, value in secrets.items()]) if secrets else None,
        attachments=[
            OutboxAttachment(filename=filename, mimetype=mimetype, content=content)
            for filename, mimetype, content in attachments or ()
        ],
    )
    db.session.add(message)
    on_commit(functools.partial(_enqueue_committed, message))
    return message


def requeue(message: OutboxMessage) -> None:
    """Put a pending, failed or kept message back in line: it is sent again once the current transaction commits."""
    message.status = "pending"
    message.next_attempt_at = utcnow() + dt.timedelta(seconds=retry_schedule()[0])
    on_commit(functools.partial(_enqueue_committed, message))


def _enqueue_send(message_id: int) -> None:
    jobs.enqueue(send_message, message_id, job_id=mail_job_id(message_id))


def mail_job_id(message_id: int) -> str:
    return f"mail:{message_id}"


def retry_due(now: dt.datetime | None = None) -> list[int]:
    """Enqueue every pending or failed message whose next attempt has come (the worker's sweep, each minute)."""
    now = now or utcnow()
    ids = db.session.scalars(
        db.select(OutboxMessage.id)
        .where(OutboxMessage.status.in_(("pending", "failed")), OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at)
    ).all()
    db.session.rollback()  # end the read: on SQLite an open reader would hold up the jobs' writes
    for message_id in ids:
        _enqueue_send(message_id)
    return list(ids)


def _enqueue_committed(message: OutboxMessage) -> None:
    # The identity, not `message.id`: the expired attribute would be read with a query, in a new transaction.
    message_id = sa.inspect(message).identity[0]
    try:
        _enqueue_send(message_id)
    except Exception as exc:
        # The commit has happened: report, and leave the message for `flask outbox send-pending`.
        log.warning("outbox message %s was not sent: %s", message_id, exc)


class MailNotSent(RuntimeError):
    """The mail server did not take the message; the text never carries the message's secrets."""


def as_sent(message: OutboxMessage, pairs: list[tuple[str, str]] | None = None) -> tuple[str, str, str | None]:
    """Subject, text and HTML body as the recipient receives them, secrets in place: for sending, never for a page."""
    pairs = _unseal(message) if pairs is None else pairs
    return (
        _reveal(message.subject, pairs),
        _reveal(message.body_text, pairs),
        _reveal(message.body_html, pairs, html=True),
    )


def sender_and_reply_to(session: Session | None = None) -> tuple[str, str | None]:
    """From and Reply-To of every email: the dealer's company name at MAIL_DEFAULT_SENDER's address (the one the mail
    server may send from), replies to the company's contact email; MAIL_DEFAULT_SENDER as it is without company data."""
    configured = current_app.config["MAIL_DEFAULT_SENDER"]
    company = (session or db.session).scalar(sa.select(Company).order_by(Company.id).limit(1))
    if company is None or not company.name:
        return configured, None
    return formataddr((company.name, parseaddr(configured)[1])), company.email or None


def _mail_message(message: OutboxMessage, pairs: list[tuple[str, str]], session: Session) -> Message:
    subject, text, html = as_sent(message, pairs)
    sender, reply_to = sender_and_reply_to(session)
    mail_message = Message(
        subject=subject,
        recipients=list(message.recipients),
        body=text,
        html=html,
        sender=sender,
        reply_to=reply_to,
    )
    for attachment in message.attachments:
        mail_message.attach(attachment.filename, attachment.mimetype, attachment.content)
    return mail_message


def send_message(message_id: int) -> None:
    """The job: hand one outbox message to the mail server. A message already sent is not sent again.

    A failure schedules the next attempt (`retry_schedule`) and raises MailNotSent, so the job is recorded failed.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # A session of its own: inline, this runs inside the caller's commit (core.db.on_commit), not in its session.
    with Session(db.engine, expire_on_commit=False) as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status == "sent":
            return
        if not app.config.get("MAIL_SERVER"):
            message.status, message.last_error, message.next_attempt_at = "kept", KEPT_NOTE, None
            session.commit()
            return
        message.attempts += 1
        pairs: list[tuple[str, str]] = []
        try:
            pairs = _unseal(message)
            mail.send(_mail_message(message, pairs, session))
        except Exception as exc:
            error = _scrub(f"{exc.__class__.__name__}: {exc}", pairs)
            schedule = retry_schedule()
            retry_in = schedule[message.attempts - 1] if message.attempts <= len(schedule) else None
            message.status, message.last_error = "failed", error
            message.next_attempt_at = utcnow() + dt.timedelta(seconds=retry_in) if retry_in is not None else None
            session.commit()
            raise MailNotSent(error) from None  # not chained: the original may quote the message
        message.status, message.sent_at, message.last_error = "sent", utcnow(), None
        message.next_attempt_at = message.sealed_secrets = None
        session.commit()
    signals.email_sent.send(app, message_id=message_id)


# No RQ retries: the message's own schedule (next_attempt_at, the worker's sweep) spaces the attempts out.
send_message.job_retries = 0  # type: ignore[attr-defined]


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
            redacted=REDACTED,
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
            query = query.where(
                sa.or_(
                    contains(OutboxMessage.subject, search),
                    contains(sa.cast(OutboxMessage.recipients, sa.String), search),
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
            sender=sender_and_reply_to()[0],
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
            flash(_("This email was already sent."), "warning")
            return redirect(url_for(".details", message_id=message_id))
        requeue(message)
        db.session.commit()
        if jobs.job_status(mail_job_id(message_id)) == "waiting":
            outcome = (_("The job queue is unreachable: the email waits and is sent as soon as it is back."), "warning")
        else:
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


@outbox_cli.command("show")
@click.argument("message_id", type=int)
def show_message(message_id: int) -> None:
    """Print email MESSAGE_ID as its recipient receives it, links included: for the server's operator only (the
    back office shows those links redacted), e.g. to follow a kept email's link on the embedded default."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise click.BadParameter(f"there is no email {message_id}", param_hint="MESSAGE_ID")
    subject, text, _html = as_sent(message)
    click.echo(f"To: {', '.join(message.recipients)}\nSubject: {subject}\n\n{text}")


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
    jobs.add_sweep(app, retry_due)
    app.extensions["copydesk"].admin.add_view(
        OutboxView(name=_l("Outbox"), endpoint="core_outbox", url="outbox", category=_l("Settings"))
    )
    app.cli.add_command(outbox_cli)
