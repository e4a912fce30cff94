"""The monthly report email: on the 1st, last month's report with its PDF to each subscribed customer admin, in their
language, once per month; nobody else gets it."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.models import OutboxMessage, User
from modules.device_accounting import report_mail
from modules.device_accounting.models import ReportSubscription
from modules.device_accounting.tests import portal_support as p
from tests.auth_support import make_user


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(dt.datetime(2026, 4, 1, 5, 0, tzinfo=dt.UTC), tick=True):
        yield


@pytest.fixture
def world(app):
    with time_machine.travel(p.NOW, tick=False), app.app_context():
        ours = p.build_company("Studio Bianchi", "bianchi.it", "it", "KY1")
        theirs = p.build_company("Farmacia Verdi", "verdi.it", "es", "KY2")
        for company in (ours, theirs):
            admin = db.session.scalar(sa.select(User).where(User.email == company.admin))
            db.session.add(ReportSubscription(user_id=admin.id, customer_id=company.customer))
        db.session.commit()
        return ours, theirs


def messages() -> list[OutboxMessage]:
    return list(db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def test_march_report_goes_once_to_each_subscribed_admin_with_its_pdf(app, world):
    ours, theirs = world
    with app.app_context():
        assert report_mail.send_due(dt.date(2026, 4, 1)) == 2
        db.session.commit()
        assert report_mail.send_due(dt.date(2026, 4, 1)) == 0  # the job run again the same day
        db.session.commit()
        sent = messages()
        assert [message.recipients for message in sent] == [[ours.admin], [theirs.admin]]
        italian, spanish = sent
        assert italian.language == "it" and "marzo 2026" in italian.subject and "Studio Bianchi" in italian.subject
        assert (
            spanish.language == "es" and "Farmacia Verdi" in spanish.subject and '<html lang="es">' in spanish.body_html
        )
        assert "4,485\xa0€" in italian.body_text  # 0,35 + 0,60 + 0,035 + 3,50, to the tenth of a cent
        assert "Luisa Verdi" in italian.body_text and "/portal/print/reports/" in italian.body_text
        (attachment,) = italian.attachments
        assert attachment.mimetype == "application/pdf" and attachment.content.startswith(b"%PDF")
        assert attachment.filename.endswith("2026-03-01_2026-03-31.pdf")
        months = set(db.session.scalars(sa.select(ReportSubscription.last_sent_month)))
        assert months == {dt.date(2026, 3, 1)}


def test_april_report_follows_in_may(app, world):
    with app.app_context():
        report_mail.send_due(dt.date(2026, 4, 1))
        db.session.commit()
    with time_machine.travel(dt.datetime(2026, 5, 1, 5, 0, tzinfo=dt.UTC), tick=True), app.app_context():
        assert report_mail.send_due(dt.date(2026, 5, 1)) == 2
        db.session.commit()
        subjects = [message.subject for message in messages()]
        assert len(subjects) == 4 and "aprile 2026" in subjects[2]
        nothing = p.translated(app, "it", "No jobs were recorded in %(month)s.", month="aprile 2026")
        assert nothing in messages()[2].body_text


def test_nobody_but_active_customer_admins_who_asked_gets_it(app, world):
    ours, theirs = world
    with app.app_context():
        # One admin became a plain user, the other was disabled; a third admin never asked.
        db.session.scalar(sa.select(User).where(User.email == ours.admin)).role = "customer_user"
        db.session.scalar(sa.select(User).where(User.email == theirs.admin)).active = False
        db.session.commit()
        make_user("capo@bianchi.it", "customer_admin", customer_id=ours.customer)
        assert report_mail.send_due(dt.date(2026, 4, 1)) == 0
        db.session.commit()
        assert messages() == []
        # Made admin again, the subscription works again.
        db.session.scalar(sa.select(User).where(User.email == ours.admin)).role = "customer_admin"
        db.session.commit()
        assert report_mail.send_due(dt.date(2026, 4, 1)) == 1
        db.session.commit()
        assert [m.recipients for m in messages()] == [[ours.admin]]


def test_the_periodic_job_sends_it(app, world):
    result = app.test_cli_runner().invoke(args=["jobs", "run-periodic", "device_accounting.send_monthly_reports"])
    assert result.exit_code == 0 and result.output.strip().endswith("done"), result.output
    with app.app_context():
        assert len(messages()) == 2
