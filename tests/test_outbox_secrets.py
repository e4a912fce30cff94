"""Secrets in emails (reset, set-password, reading links) are redacted in the outbox and sent only to the recipient."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core.db import db
from core.models import AuditLog, JobRecord, OutboxMessage
from core.outbox import queue_email, send_message
from tests.auth_support import PASSWORD, login, make_user, post_form
from tests.test_outbox import build_app, message_status, staff_client

ADMIN = "admin@dealer.example"
# Any link to a reset page, as shown on a page or in an email (the path ends where HTML or whitespace starts).
RESET_LINK = re.compile(r"https?://[^\s\"'<>]+/reset-password/[^\s\"'<>]+")


@pytest.fixture
def mail_app(empty_db_url, smtp_server):
    """An app sending to the test SMTP server; no app context stays pushed, so each client request has its own `g`."""
    app = build_app(empty_db_url, MAIL_SERVER=smtp_server.host, MAIL_PORT=smtp_server.port, MAIL_SUPPRESS_SEND=False)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def in_app(mail_app):
    with mail_app.app_context():
        yield mail_app
        db.session.remove()


def path_of(link: str) -> str:
    return urlsplit(link).path


def every_stored_text() -> str:
    """What the database keeps of outbox messages, job records and the audit log, as one text."""
    db.session.rollback()
    texts = []
    for model in (OutboxMessage, JobRecord, AuditLog):
        for row in db.session.scalars(sa.select(model)):
            texts.append(json.dumps({c.key: str(getattr(row, c.key)) for c in sa.inspect(model).column_attrs}))
    return "\n".join(texts)


def test_back_office_cannot_take_over_the_admin_through_a_reset_link_in_the_outbox(mail_app, smtp_server):
    with mail_app.app_context():
        make_user(ADMIN, role="dealer_admin")
    smtp_server.stop()  # the email waits in the outbox, where the back office can read it
    visitor = mail_app.test_client()
    assert post_form(visitor, "/forgot-password", {"email": ADMIN}).status_code == 200

    back_office = staff_client(mail_app, "back_office")
    listing = back_office.get("/admin/outbox/").get_data(as_text=True)
    with mail_app.app_context():
        [message_id] = db.session.scalars(sa.select(OutboxMessage.id)).all()
    details = back_office.get(f"/admin/outbox/{message_id}").get_data(as_text=True)
    shown = RESET_LINK.findall(listing + details)
    assert shown, "the outbox shows where the link leads, without its token"
    for link in shown:
        page = visitor.get(path_of(link))
        assert page.status_code in (400, 404), f"the link shown in the outbox opens the reset form: {link}"

    smtp_server.start()
    with mail_app.app_context():
        send_message(message_id)  # the next attempt, as the worker's sweep makes it
    received = smtp_server.wait_for(1)[0]
    [real_link] = set(RESET_LINK.findall(received.get_body(("plain",)).get_content()))
    assert real_link in received.get_body(("html",)).get_content()
    token = path_of(real_link).rsplit("/", 1)[1]
    after = back_office.get(f"/admin/outbox/{message_id}").get_data(as_text=True)
    assert token not in listing + details + after
    with mail_app.app_context():
        assert token not in every_stored_text()
        assert message_status(message_id).status == "sent"

    # The delivered link is the one that works: the admin chooses a new password with it and logs in.
    form = visitor.get(path_of(real_link))
    assert form.status_code == 200
    new_password = "a brand new passphrase"
    response = post_form(visitor, path_of(real_link), {"new_password": new_password, "confirm": new_password})
    assert response.status_code == 302
    assert login(mail_app.test_client(), ADMIN, new_password).status_code == 302
    assert login(mail_app.test_client(), ADMIN, PASSWORD).status_code != 302


def test_secret_is_encrypted_at_rest_and_wiped_once_sent(in_app, smtp_server):
    smtp_server.stop()
    message = queue_email(
        ["anna@studiobianchi.example"],
        "auth/reset_password",
        "it",
        context={"name": "Anna", "email": "anna@studiobianchi.example", "hours": 2, "days": 0, "site": "Copydesk"},
        secrets={"link": "http://127.0.0.1:5000/reset-password/s3cr3t-t0ken"},
    )
    db.session.commit()
    stored = message_status(message.id)
    assert stored.status == "failed"
    assert "s3cr3t-t0ken" not in every_stored_text()
    assert "http://127.0.0.1:5000/reset-password/••••••" in stored.body_text
    assert stored.sealed_secrets  # kept, encrypted, for the next attempt

    smtp_server.start()
    send_message(message.id)
    received = smtp_server.wait_for(1)[0]
    assert "http://127.0.0.1:5000/reset-password/s3cr3t-t0ken" in received.get_body(("plain",)).get_content()
    assert 'href="http://127.0.0.1:5000/reset-password/s3cr3t-t0ken"' in received.get_body(("html",)).get_content()
    sent = message_status(message.id)
    assert sent.status == "sent"
    assert sent.sealed_secrets is None


def test_set_password_link_for_a_new_user_is_redacted_in_the_outbox(in_app, smtp_server):
    smtp_server.stop()
    make_user("new@dealer.example", role="technician", password=None)
    stored = db.session.scalar(sa.select(OutboxMessage))
    assert re.search(r"/set-password/•+", stored.body_text)
    assert not re.search(r"/set-password/[A-Za-z0-9_.-]{10,}", stored.body_text + (stored.body_html or ""))
