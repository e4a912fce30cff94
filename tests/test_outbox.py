"""The mail outbox: emails written with the change that causes them, delivered to a real SMTP server after commit."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from babel.dates import format_date

from conftest import make_app, migrate
from core.db import db
from core.models import OutboxMessage, User
from core.outbox import queue_email, send_message
from core.signals import email_sent
from tests.auth_support import login, make_user

PDF = b"%PDF-1.4 a small test document"
SENT_ON = dt.datetime(2026, 6, 5, 9, 30, tzinfo=dt.UTC)


def build_app(db_url: str, **config):
    """A migrated app with its own mail (and job) settings, rebuilt after migrating as a real restart would."""
    migrate(make_app(db_url, **config))
    return make_app(db_url, **config)


@pytest.fixture
def mail_app(empty_db_url, smtp_server):
    """An app whose MAIL_SERVER is the test SMTP server (Flask-Mail would not send while TESTING without the flag)."""
    app = build_app(empty_db_url, MAIL_SERVER=smtp_server.host, MAIL_PORT=smtp_server.port, MAIL_SUPPRESS_SEND=False)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def staff_client(app, role="back_office"):
    """A browser logged in through the real login form as a staff member with `role`."""
    client = app.test_client()
    with app.app_context():
        make_user(f"{role}@dealer.example", role=role)
    assert login(client, f"{role}@dealer.example").status_code == 302
    return client


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def message_status(message_id: int) -> OutboxMessage:
    db.session.rollback()
    return db.session.get(OutboxMessage, message_id)


def queue_test_email(language="en", **kwargs) -> OutboxMessage:
    return queue_email(["anna@studiobianchi.example"], "core/test", language, context={"sent_on": SENT_ON}, **kwargs)


def test_email_queued_in_a_transaction_is_delivered_after_commit(mail_app, smtp_server):
    announced = []
    message = queue_test_email(attachments=[("contract.pdf", "application/pdf", PDF)])
    db.session.flush()
    assert smtp_server.messages == []  # nothing leaves before the transaction commits
    with email_sent.connected_to(lambda app, message_id: announced.append(message_id)):
        db.session.commit()

    received = smtp_server.wait_for(1)[0]
    assert received["Subject"] == "Copydesk test email"
    assert received["To"] == "anna@studiobianchi.example"
    assert received["From"] == "Copydesk <noreply@copydesk.local>"
    assert "outgoing mail works" in received.get_body(("plain",)).get_content()
    assert 'lang="en"' in received.get_body(("html",)).get_content()
    [attachment] = list(received.iter_attachments())
    assert attachment.get_filename() == "contract.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF
    stored = message_status(message.id)
    assert stored.status == "sent"
    assert stored.sent_at is not None
    assert stored.attempts == 1
    assert announced == [message.id]


def test_rolled_back_transaction_sends_nothing(mail_app, smtp_server):
    queue_test_email()
    db.session.flush()
    db.session.rollback()
    db.session.add(User(email="later@dealer.example", name="Later", role="technician"))
    db.session.commit()  # a later commit in the same session must not send the forgotten email

    assert smtp_server.messages == []
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_same_dedupe_key_sends_one_email(mail_app, smtp_server):
    first = queue_test_email(dedupe_key="reading-request:42:2026-06")
    db.session.commit()
    second = queue_test_email(dedupe_key="reading-request:42:2026-06")
    db.session.commit()
    send_message(first.id)  # the job running a second time

    assert second.id == first.id
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 1
    smtp_server.wait_for(1)
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("language", "locale"),
    [("it", "it"), ("es", "es"), ("en", "en"), ("it_IT", "it"), ("de", "en")],
)
def test_email_is_written_in_the_recipient_language(mail_app, smtp_server, language, locale):
    message = queue_test_email(language)
    db.session.commit()

    received = smtp_server.wait_for(1)[0]
    html = received.get_body(("html",)).get_content()
    text = received.get_body(("plain",)).get_content()
    assert f'<html lang="{locale}">' in html
    assert format_date(SENT_ON, "full", locale=locale) in text
    assert message_status(message.id).language == locale


def test_unreachable_server_marks_the_email_failed_and_send_again_delivers_it(mail_app, smtp_server):
    smtp_server.stop()
    message = queue_test_email()
    db.session.commit()

    failed = message_status(message.id)
    assert failed.status == "failed"
    assert "Connection refused" in failed.last_error
    assert failed.attempts == 1

    smtp_server.start()
    client = staff_client(mail_app)
    page = client.get(f"/admin/outbox/{message.id}").get_data(as_text=True)
    assert "Connection refused" in page
    response = client.post(f"/admin/outbox/{message.id}/send", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302

    assert smtp_server.wait_for(1)[0]["Subject"] == "Copydesk test email"
    sent = message_status(message.id)
    assert sent.status == "sent"
    assert sent.attempts == 2
    assert "The email was sent." in client.get(response.location).get_data(as_text=True)


def test_send_pending_command_delivers_what_failed_while_the_server_was_down(mail_app, smtp_server):
    smtp_server.stop()
    message = queue_test_email()
    db.session.commit()
    assert message_status(message.id).status == "failed"

    smtp_server.start()
    result = mail_app.test_cli_runner().invoke(args=["outbox", "send-pending"])

    assert result.exit_code == 0, result.output
    assert "sent: 1" in result.output
    assert smtp_server.wait_for(1)[0]["To"] == "anna@studiobianchi.example"
    assert message_status(message.id).status == "sent"


def test_send_again_without_csrf_token_is_refused(mail_app, smtp_server):
    smtp_server.stop()
    message = queue_test_email()
    db.session.commit()
    smtp_server.start()

    response = staff_client(mail_app).post(f"/admin/outbox/{message.id}/send")

    assert response.status_code == 400
    assert message_status(message.id).status == "failed"
    assert smtp_server.messages == []


def test_outbox_test_command_delivers_a_test_email(mail_app, smtp_server):
    result = mail_app.test_cli_runner().invoke(args=["outbox", "test", "me@dealer.example", "--language", "es"])

    assert result.exit_code == 0, result.output
    assert "Test email sent to me@dealer.example" in result.output
    received = smtp_server.wait_for(1)[0]
    assert received["To"] == "me@dealer.example"
    assert '<html lang="es">' in received.get_body(("html",)).get_content()


def test_outbox_test_command_rejects_a_bad_address(mail_app, smtp_server):
    result = mail_app.test_cli_runner().invoke(args=["outbox", "test", "not-an-address"])

    assert result.exit_code != 0
    assert "not-an-address is not a valid email address" in result.output
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_delivery_through_redis_and_a_real_rq_worker(empty_db_url, smtp_server, redis_url):
    from core.jobs import run_worker

    app = build_app(
        empty_db_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
        REDIS_URL=redis_url,
    )
    with app.app_context():
        message = queue_test_email(attachments=[("contract.pdf", "application/pdf", PDF)])
        db.session.commit()
        assert message_status(message.id).status == "pending"  # waiting for the worker
        assert smtp_server.messages == []

        run_worker(app, burst=True)

        received = smtp_server.wait_for(1)[0]
        assert received["Subject"] == "Copydesk test email"
        assert [a.get_filename() for a in received.iter_attachments()] == ["contract.pdf"]
        assert message_status(message.id).status == "sent"
        db.session.remove()
        db.engine.dispose()


def test_without_mail_server_the_email_is_kept_and_readable_in_the_outbox(app, db_session):
    message = queue_test_email("it", attachments=[("contract.pdf", "application/pdf", PDF)])
    db_session.commit()
    assert message_status(message.id).status == "kept"

    client = staff_client(app)
    listing = client.get("/admin/outbox/").get_data(as_text=True)
    assert "No mail server is configured." in listing
    assert 'data-status="kept"' in listing
    assert "anna@studiobianchi.example" in listing
    assert "Email di prova di Copydesk" in listing  # the subject, written in the recipient's Italian

    page = client.get(f"/admin/outbox/{message.id}").get_data(as_text=True)
    assert "Send again" in page
    assert 'sandbox=""' in page
    assert "&lt;html lang=&#34;it&#34;&gt;" in page  # the HTML body, escaped into the iframe's srcdoc
    download = client.get(f"/admin/outbox/{message.id}/attachments/{message_status(message.id).attachments[0].id}")
    assert download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_scripts_in_an_email_are_shown_never_run(app, db_session):
    message = OutboxMessage(
        recipients=["x@example.com"],
        subject="Hello",
        body_text="Hello",
        body_html='<p>Hi</p><script>alert("owned")</script>',
        status="kept",
    )
    db_session.add(message)
    db_session.commit()

    page = staff_client(app).get(f"/admin/outbox/{message.id}").get_data(as_text=True)

    assert '<script>alert("owned")' not in page
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page
    iframe = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox=""' in iframe
    assert "allow-scripts" not in iframe


def test_outbox_list_filters_by_status_and_searches_recipients_and_subjects(app, db_session):
    for recipient, subject, status in (
        ("rossi@farmacia.example", "Invoice 2026/0007", "sent"),
        ("bianchi@studio.example", "Meter reading request", "failed"),
        ("verdi@hotel.example", "Invoice 2026/0008", "kept"),
    ):
        db_session.add(OutboxMessage(recipients=[recipient], subject=subject, body_text="-", status=status))
    db_session.commit()
    client = staff_client(app)

    failed = client.get("/admin/outbox/?status=failed").get_data(as_text=True)
    assert "Meter reading request" in failed
    assert "Invoice 2026/0007" not in failed
    by_recipient = client.get("/admin/outbox/?q=rossi").get_data(as_text=True)
    assert "Invoice 2026/0007" in by_recipient
    assert "Invoice 2026/0008" not in by_recipient
    by_subject = client.get("/admin/outbox/?q=invoice").get_data(as_text=True)
    assert "Invoice 2026/0007" in by_subject
    assert "Invoice 2026/0008" in by_subject
    assert "Meter reading request" not in by_subject
    assert "No email matches this filter." in client.get("/admin/outbox/?q=50%25_off").get_data(as_text=True)


def test_outbox_is_closed_to_staff_without_the_permission_and_to_visitors(app, db_session):
    assert app.test_client().get("/admin/outbox/").status_code == 302
    assert staff_client(app, role="technician").get("/admin/outbox/").status_code == 403


def test_invalid_recipient_is_rejected_and_nothing_is_queued(app, db_session):
    with pytest.raises(ValueError, match="anna@ is not a valid email address"):
        queue_email(["anna@"], "core/test", "it", context={"sent_on": SENT_ON})
    db_session.commit()
    assert db_session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_email_queued_before_a_savepoint_is_sent_at_the_real_commit(mail_app, smtp_server):
    """Releasing a savepoint is not the commit: the email waits for it, and is not lost."""
    message = queue_test_email()
    with db.session.begin_nested():
        db.session.add(User(email="nested@dealer.example", name="Nested", role="technician"))
    assert smtp_server.messages == []
    db.session.commit()

    assert smtp_server.wait_for(1)[0]["To"] == "anna@studiobianchi.example"
    assert message_status(message.id).status == "sent"
