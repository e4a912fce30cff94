"""Drill: Redis and the mail server go down during a portal reading, an invoice posting and a billing run.

Both servers are the test's own (redis-server and aiosmtpd on free ports), stopped and started again; Redis restarts
empty, as one without persistence does. Nothing may be lost, everything must arrive after recovery, nothing twice.
"""

from __future__ import annotations

import datetime as dt
import signal

import pytest
import sqlalchemy as sa

from core import jobs
from core.db import db, utcnow
from core.extensions import limiter
from core.models import JobRecord, OutboxMessage, Partner, PartnerContact
from modules.invoicing.models import BillingRun, Invoice
from modules.invoicing.tests.support import add_company
from modules.metering.models import Reading
from modules.metering.tests import support as metering
from tests.api_support import bearer
from tests.auth_support import CSRF_RE, login, make_user
from tests.test_outbox import build_app


@pytest.fixture
def drill_app(empty_db_url, smtp_server, own_redis, monkeypatch):
    monkeypatch.setattr(jobs, "_redis_was_down", jobs.threading.Event())
    app = build_app(
        empty_db_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
        REDIS_URL=own_redis.url,
        JOB_RETRY_INTERVALS=[1],
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def dealer_with_a_customer(app) -> dict:
    """The dealer, a customer with a colour copier on a monthly contract since January, its portal user, a token."""
    with app.app_context():
        add_company()
        customer = Partner(name="Studio Bianchi", is_customer=True, language="it", email="studio@bianchi.example")
        customer.contacts.append(
            PartnerContact(name="Amministrazione", email="fatture@bianchi.example", receives_invoices=True)
        )
        db.session.add(customer)
        db.session.flush()
        device = metering.device("KY1")
        metering.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
        metering.read(device, "2026-11-02", bw=11_000, color=2_100)
        db.session.commit()
        make_user("user@bianchi.example", "customer_user", customer_id=customer.id)
        return {"customer": customer.id, "device": device.id, "token": bearer("dealer_admin")}


def portal_reading(app, device_id: int, bw: int, color: int) -> None:
    limiter.reset()
    client = app.test_client()
    assert login(client, "user@bianchi.example", url="/portal/login").status_code == 302
    url = "/portal/readings/enter"
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    fields = {f"d{device_id}-bw": str(bw), f"d{device_id}-color": str(color)}
    response = client.post(url, data={"csrf_token": token, **fields, "step": "confirm"})
    assert response.status_code == 302, response.get_data(as_text=True)


def start_run(client, headers, as_of: str) -> int:
    response = client.post("/api/v1/billing-runs", json={"as_of": as_of}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def recover(app) -> None:
    """`flask worker --burst` (its sweeps, then the queue) until nothing more comes: jobs enqueue jobs."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _round in range(4):  # a chunk drafts, a posting delivers, a delivery emails
            jobs.run_worker(app, burst=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def job_statuses(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(JobRecord.status, sa.func.count()).group_by(JobRecord.status)).all())


def test_redis_and_mail_down_during_a_reading_a_posting_and_a_run_lose_nothing_and_send_once(
    drill_app, smtp_server, own_redis
):
    app = drill_app
    world = dealer_with_a_customer(app)
    staff, client = world["token"], app.test_client()
    november = start_run(client, staff, "2026-11-05")
    recover(app)
    with app.app_context():
        [draft_id] = db.session.scalars(sa.select(Invoice.id).where(Invoice.billing_run_id == november)).all()

    own_redis.stop()
    smtp_server.stop()

    portal_reading(app, world["device"], bw=11_900, color=2_250)
    posted = client.post(f"/api/v1/invoices/{draft_id}/post", json={"issue_date": "2026-12-01"}, headers=staff)
    assert posted.status_code == 200, posted.get_data(as_text=True)
    december = start_run(client, staff, "2026-12-05")
    assert job_statuses(app).get("waiting", 0) >= 3  # the confirmation email, the delivery, the run's chunk

    own_redis.start()  # empty: whatever it held before is gone
    recover(app)  # the mail server is still down: the emails fail and are scheduled again
    with app.app_context():
        emails = db.session.scalars(sa.select(OutboxMessage)).all()
        assert {m.template for m in emails} == {"metering/confirmation", "invoicing/invoice"}
        assert all(m.status == "failed" and m.next_attempt_at for m in emails)
        run = db.session.get(BillingRun, december)
        assert run.status == "done"

    smtp_server.start()
    with app.app_context():  # the next attempts come due
        db.session.execute(sa.update(OutboxMessage).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
        db.session.commit()
    recover(app)
    recover(app)  # and once more: nothing is sent twice

    received = smtp_server.wait_for(2)
    assert len(smtp_server.messages) == 2
    by_recipient = {message["To"]: message for message in received}
    assert set(by_recipient) == {"user@bianchi.example", "fatture@bianchi.example"}
    invoice_mail = by_recipient["fatture@bianchi.example"]
    assert [a.get_content_type() for a in invoice_mail.iter_attachments()] == ["application/pdf"]
    assert "11.900" in by_recipient["user@bianchi.example"].get_body(("plain",)).get_content()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Reading).where(Reading.source == "portal")) == 1
        assert db.session.get(Invoice, draft_id).state == "posted"
        assert db.session.scalars(sa.select(Invoice.id).where(Invoice.billing_run_id == december)).all()
        assert {m.status for m in db.session.scalars(sa.select(OutboxMessage))} == {"sent"}
    assert set(job_statuses(app)) <= {"done", "failed"}  # failed: the mail attempts made while the server was down
