"""Dunning: one reminder per customer listing all its overdue invoices, at the configured steps, never the same step
twice for the same invoices, never to a customer whose items are matched; the daily job emails it for real."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import OutboxMessage
from modules.accounting import dunning, jobs, payments, sepa, settings
from modules.accounting.models import DunningLetter
from modules.accounting.tests import support
from modules.accounting.tests.conftest import accounting_app

D = Decimal


def test_the_step_reached_counts_the_steps_passed():
    due = dt.date(2026, 10, 1)
    steps = [7, 21, 45]
    assert [dunning.step_reached(due, due + dt.timedelta(days=n), steps) for n in (0, 6, 7, 20, 21, 45, 300)] == [
        0,
        0,
        1,
        1,
        2,
        3,
        3,
    ]


def letters() -> list[DunningLetter]:
    return list(db.session.scalars(sa.select(DunningLetter).order_by(DunningLetter.id)))


def outbox() -> list[OutboxMessage]:
    """The reminders in the outbox (posting an invoice queues its own email too)."""
    query = sa.select(OutboxMessage).where(OutboxMessage.template == "accounting/dunning")
    return list(db.session.scalars(query.order_by(OutboxMessage.id)))


@pytest.fixture
def books(db_session):
    """Rossi (Spanish speaking) owes two overdue invoices and one not yet due; Verdi's invoice is paid; Bianchi paid
    in advance more than it owes; Neri has no email address."""
    settings.set_dunning_steps([7, 21, 45])
    rossi = support.make_customer("Rossi Srl", email="conti@rossi.example", language="es")
    verdi = support.make_customer("Verdi Spa", email="amm@verdi.example")
    bianchi = support.make_customer("Bianchi Snc", email="info@bianchi.example")
    neri = support.make_customer("Neri Sas")
    old = support.make_posted_invoice(rossi, [("fee", "100.00", "22")], issue_date=dt.date(2026, 7, 1))  # due 31/7
    paid = support.make_posted_invoice(verdi, [("fee", "100.00", "22")], issue_date=dt.date(2026, 7, 2))
    payments.record_payment(verdi.id, D("122.00"), dt.date(2026, 8, 30), invoice_id=paid.id)
    support.make_posted_invoice(bianchi, [("fee", "10.00", "22")], issue_date=dt.date(2026, 7, 3))
    payments.record_payment(bianchi.id, D("50.00"), dt.date(2026, 7, 5), advance=True)
    support.make_posted_invoice(neri, [("fee", "10.00", "22")], issue_date=dt.date(2026, 7, 4))
    mid = support.make_posted_invoice(rossi, [("fee", "200.00", "22")], issue_date=dt.date(2026, 9, 15))  # due 15/10
    support.make_posted_invoice(rossi, [("fee", "50.00", "22")], issue_date=dt.date(2026, 11, 10))  # due 10/12
    db.session.commit()
    return rossi, old, mid


def test_one_reminder_per_customer_lists_all_its_overdue_invoices_in_its_language(books):
    rossi, old, mid = books

    sent = dunning.run_dunning(dt.date(2026, 11, 20))
    db.session.commit()

    assert [(letter.partner_id, sorted(letter.invoice_ids)) for letter in sent] == [
        (rossi.id, sorted([old.id, mid.id]))
    ]
    (letter,) = sent
    assert letter.step == 3 and letter.total == D("366.00")  # 112 days late: the third step
    (message,) = outbox()
    assert message.id == letter.outbox_message_id
    assert message.recipients == ["conti@rossi.example"] and message.language == "es"
    assert old.number in message.body_text and mid.number in message.body_text
    assert "366" in message.body_text
    assert "Rossi Srl" in message.body_html


def test_no_invoice_is_reminded_twice_at_the_same_step(books):
    _rossi, old, mid = books
    dunning.run_dunning(dt.date(2026, 11, 20))
    db.session.commit()

    # The same day, and days later with no invoice reaching a new step: nothing more.
    assert dunning.run_dunning(dt.date(2026, 11, 20)) == []
    assert dunning.run_dunning(dt.date(2026, 11, 28)) == []
    # 29 November: the September invoice is 45 days late, its third step; the letter lists both again.
    (again,) = dunning.run_dunning(dt.date(2026, 11, 29))
    db.session.commit()
    assert sorted(again.invoice_ids) == sorted([old.id, mid.id]) and again.step == 3
    assert len(letters()) == 2 and len(outbox()) == 2


def test_a_customer_who_paid_gets_no_reminder(books):
    rossi, old, mid = books
    payments.record_payment(rossi.id, D("122.00"), dt.date(2026, 11, 18), invoice_id=old.id)
    payments.record_payment(rossi.id, D("244.00"), dt.date(2026, 11, 18), invoice_id=mid.id)
    db.session.commit()

    assert dunning.run_dunning(dt.date(2026, 11, 20)) == []
    assert outbox() == []


def test_an_invoice_being_collected_by_direct_debit_is_not_reminded(books):
    rossi, _old, _mid = books
    support.make_company()
    sepa.set_creditor_id("IT66ZZZA1B2C3D4E5F6G7H8")
    sepa.save_mandate(
        None, partner_id=rossi.id, reference="MND-R", signed_on="2025-01-01", iban="DE89370400440532013000"
    )
    sepa.create_batch("2026-07-01", "2026-10-31", clock.today() + dt.timedelta(days=5))
    db.session.commit()

    assert dunning.run_dunning(dt.date(2026, 11, 20)) == []


@pytest.fixture
def mail_app(app, smtp_server):
    """The same database, with mail going to the test SMTP server."""
    mailing = accounting_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
    )
    yield mailing
    with mailing.app_context():
        db.engine.dispose()


def test_the_daily_job_emails_the_reminder(mail_app, smtp_server):
    with mail_app.app_context():
        support.make_company()
        customer = support.make_customer("Studio Gialli", email="studio@gialli.example", language="it")
        # Due 30 days after issue: well past the first step today.
        invoice = support.make_posted_invoice(customer, issue_date=clock.today() - dt.timedelta(days=60))
        number = invoice.number

        assert jobs.send_reminders() == 1
        assert jobs.send_reminders() == 0

        delivered = smtp_server.wait_for(2)  # the invoice itself, then the reminder
        (message,) = [m for m in delivered if "reminder" in m["Subject"] or "sollecito" in m["Subject"].lower()]
        assert message["To"] == "studio@gialli.example"
        assert "Copiatrici Rossi Srl" in message["Subject"]
        assert number in message.get_body(("plain",)).get_content()
        db.session.remove()


def test_the_reminders_page_names_each_letters_email_and_links_to_it(app, books):
    import lxml.html

    from core.extensions import limiter
    from tests.auth_support import login, make_user

    (letter,) = dunning.run_dunning(dt.date(2026, 11, 20))
    db.session.commit()
    (message,) = outbox()
    assert letter.outbox_message_id == message.id
    make_user("office@dealer.example", "back_office", language="en")
    db.session.commit()
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302

    page = client.get("/admin/accounting_dunning_letter/")
    assert page.status_code == 200
    (cell,) = lxml.html.fromstring(page.get_data(as_text=True)).xpath(f"//a[@href='/admin/outbox/{message.id}']")
    assert cell.text_content() == f"{message.subject} · {message.status}"  # its subject and state, not a bare id
    assert f"Email {message.id}" not in page.get_data(as_text=True)
