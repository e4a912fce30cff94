"""Emails go out in the dealer's name: From is the company's name, Reply-To its contact email, its details below."""

from __future__ import annotations

import pytest

from core.db import db
from core.models import Company
from core.outbox import queue_email
from tests.test_outbox import build_app


@pytest.fixture
def dealer_mail_app(empty_db_url, smtp_server):
    app = build_app(
        empty_db_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
        MAIL_DEFAULT_SENDER="Copydesk <noreply@copydesk.local>",
    )
    with app.app_context():
        db.session.add(
            Company(
                name="Copiatrici Rossi Srl",
                street="Via Roma 1",
                postal_code="20121",
                city="Milano",
                province="MI",
                country="IT",
                email="amministrazione@rossi.example",
                phone="+39 02 1234567",
            )
        )
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


def test_email_is_sent_in_the_dealers_name_with_reply_to_and_contact_details(dealer_mail_app, smtp_server):
    queue_email(
        ["anna@studiobianchi.example"],
        "auth/set_password",
        "it",
        context={
            "name": "Anna",
            "email": "anna@studiobianchi.example",
            "site": "Copydesk",
            "days": 7,
        },
        secrets={"link": "https://copydesk.example/set-password/abc"},
    )
    db.session.commit()

    received = smtp_server.wait_for(1)[0]

    assert received["From"] == "Copiatrici Rossi Srl <noreply@copydesk.local>"
    assert received["Reply-To"] == "amministrazione@rossi.example"
    for body in (received.get_body(("plain",)).get_content(), received.get_body(("html",)).get_content()):
        assert "Via Roma 1" in body and "20121 Milano" in body
        assert "+39 02 1234567" in body and "amministrazione@rossi.example" in body
    assert received.get_body(("plain",)).get_content().startswith("Gentile Anna,")


def test_account_and_invoice_emails_greet_the_customer_with_one_form_per_language(dealer_mail_app):
    from core.outbox import render_email

    _subject, account, _html = render_email(
        "auth/set_password", "es", {"name": "Ana", "email": "ana@sol.example", "site": "Copydesk", "days": 7}
    )

    assert account.startswith("Buenos días, Ana:")  # as the invoice and reading emails ("Dear %(name)s,")
