"""Reading campaigns: due dates, one request and one email per customer and date, reminders, overdue requests with
estimates, signed links that open one request only, the staff board, and the daily job run by a real RQ worker."""

from __future__ import annotations

import datetime as dt
import re
import signal

import pytest
import sqlalchemy as sa

from core import jobs
from core.clock import local_date
from core.db import db, utcnow
from core.extensions import limiter
from core.models import OutboxMessage, Partner, PartnerContact
from core.outbox import as_sent
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest, ReadingRequestLink, ReadingSchedule
from modules.metering.tests import support as s
from modules.rentals.periods import Period
from tests.auth_support import CSRF_RE, login, make_user

D = dt.date.fromisoformat
LINK_RE = re.compile(r"http://[^/\s]+(/portal/readings/link/\S+)")


def period(start: str, end: str) -> Period:
    days = (D(end) - D(start)).days + 1
    return Period(0, D(start), D(end), days, days)


def customer(name: str = "Studio Bianchi", language: str = "it", contact: str | None = "letture@bianchi.it") -> Partner:
    partner = Partner(name=name, is_customer=True, language=language, email=f"info@{name.split()[-1].lower()}.it")
    if contact:
        partner.contacts.append(PartnerContact(name="Ufficio", email=contact, receives_readings=True))
    db.session.add(partner)
    db.session.flush()
    return partner


def setup_contract(serial: str = "KY1", name: str = "Studio Bianchi", **terms) -> tuple[int, int, int]:
    """A customer with a reading contact and a monthly contract from 2026-01-01 with one colour device."""
    partner = customer(name)
    device = s.device(serial)
    contract = s.contract(partner.id, [(device, {"bw": 10_000, "color": 2_000})], **terms)
    db.session.commit()
    return partner.id, device.id, contract.id


def reading_emails() -> list[tuple[str, list[str]]]:
    rows = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.dedupe_key.like("reading-%")).order_by(OutboxMessage.id)
    )
    return [(m.dedupe_key, list(m.recipients)) for m in rows]


def run(day: str) -> None:
    campaigns.run_campaigns(D(day))
    db.session.commit()


# Due dates


def test_reading_is_due_on_the_last_working_day_of_the_period_by_default():
    january = period("2026-01-01", "2026-01-31")  # the 31st is a Saturday
    assert campaigns.due_date_for(january, None) == D("2026-01-30")
    assert campaigns.due_date_for(period("2026-03-01", "2026-03-31"), None) == D("2026-03-31")


def test_schedule_can_ask_on_the_period_end_or_days_before_it():
    january = period("2026-01-01", "2026-01-31")
    assert campaigns.due_date_for(january, ReadingSchedule(rule="period_end", days=0)) == D("2026-01-31")
    assert campaigns.due_date_for(january, ReadingSchedule(rule="days_before_end", days=5)) == D("2026-01-26")
    assert campaigns.due_date_for(january, ReadingSchedule(rule="days_before_end", days=60)) == D("2026-01-01")


# Requests


def test_daily_job_run_twice_creates_one_request_and_one_email(db_session):
    customer_id, device_id, _contract = setup_contract()
    run("2026-01-29")
    assert db.session.scalars(sa.select(ReadingRequest)).all() == []  # not due yet
    run("2026-01-30")
    run("2026-01-30")
    run("2026-01-31")
    requests = db.session.scalars(sa.select(ReadingRequest)).all()
    assert [(r.customer_id, r.due_date, r.deadline, r.status) for r in requests] == [
        (customer_id, D("2026-01-30"), D("2026-02-10"), "pending")
    ]
    assert [item.device_id for item in requests[0].items] == [device_id]
    assert reading_emails() == [(f"reading-request:{requests[0].id}", ["letture@bianchi.it"])]
    message = db.session.scalar(sa.select(OutboxMessage))
    assert message.language == "it" and "KY1" in message.body_text
    assert LINK_RE.search(as_sent(message)[1])  # as delivered: the outbox itself shows the link redacted
    assert "/portal/readings/link/••••••" in message.body_text and "/link/••••••" in message.body_html


def test_request_goes_to_the_customer_address_without_a_reading_contact(db_session):
    partner = customer("Hotel Mare", contact=None)
    s.contract(partner.id, [(s.device("KY2"), {"bw": 1, "color": 1})])
    db.session.commit()
    run("2026-01-30")
    assert reading_emails()[0][1] == ["info@mare.it"]


def test_devices_of_one_customer_due_on_one_date_share_one_request(db_session):
    partner = customer()
    s.contract(partner.id, [(s.device("KY1"), {"bw": 1, "color": 1})])
    s.contract(partner.id, [(s.device("KY2"), {"bw": 1, "color": 1})], start_date="2026-01-01")
    db.session.commit()
    run("2026-01-30")
    (request,) = db.session.scalars(sa.select(ReadingRequest)).all()
    assert sorted(item.device.serial for item in request.items) == ["KY1", "KY2"]
    assert len(reading_emails()) == 1


def test_device_already_read_for_the_period_is_not_requested(db_session):
    _customer, device_id, _contract = setup_contract()
    s.read(db.session.get(s.Device, device_id), "2026-01-28", bw=11_000, color=2_100)
    db.session.commit()
    run("2026-01-30")
    assert db.session.scalars(sa.select(ReadingRequest)).all() == []


def test_reminders_every_three_days_at_most_three_times_then_overdue(db_session):
    setup_contract()
    for day in ("2026-01-30", "2026-02-01", "2026-02-02", "2026-02-02", "2026-02-05", "2026-02-08", "2026-02-10"):
        run(day)
    request = db.session.scalar(sa.select(ReadingRequest))
    keys = [key for key, _to in reading_emails()]
    assert keys == [
        f"reading-request:{request.id}",
        f"reading-reminder:{request.id}:1",
        f"reading-reminder:{request.id}:2",
        f"reading-reminder:{request.id}:3",
    ]
    assert (request.status, request.reminders) == ("pending", 3)
    run("2026-02-11")
    db.session.refresh(request)
    assert request.status == "overdue" and request.overdue_at is not None
    assert len(reading_emails()) == 4


def test_reading_arrived_by_another_channel_stops_reminders_and_completes_the_request(db_session):
    _customer, device_id, _contract = setup_contract()
    run("2026-01-30")
    s.read(db.session.get(s.Device, device_id), "2026-02-01", bw=11_000, color=2_100)
    db.session.commit()
    run("2026-02-02")
    request = db.session.scalar(sa.select(ReadingRequest))
    assert request.status == "completed" and request.items[0].reading.counters == {"bw": 11_000, "color": 2_100}
    assert [key for key, _to in reading_emails()] == [f"reading-request:{request.id}"]


def test_overdue_request_of_a_contract_that_estimates_gets_an_estimated_reading(db_session):
    _customer, device_id, _contract = setup_contract(start_date="2025-10-01", estimate_missing=True)
    device = db.session.get(s.Device, device_id)
    for day, bw in (("2025-10-31", 13_000), ("2025-11-28", 16_000), ("2025-12-31", 19_300)):
        s.read(device, day, bw=bw, color=2_000)
    db.session.commit()
    run("2026-01-30")
    run("2026-02-11")
    run("2026-02-11")
    request = db.session.scalar(sa.select(ReadingRequest).where(ReadingRequest.due_date == D("2026-01-30")))
    assert request.status == "overdue"
    estimates = db.session.scalars(sa.select(Reading).where(Reading.status == "estimated")).all()
    assert [(local_date(r.taken_at), r.counters["bw"] > 19_300) for r in estimates] == [(D("2026-01-31"), True)]


def test_customer_without_any_address_gets_a_request_marked_unsent(db_session):
    partner = Partner(name="Senza Email", is_customer=True, language="it")
    db.session.add(partner)
    db.session.flush()
    s.contract(partner.id, [(s.device("KY9"), {"bw": 1, "color": 1})])
    db.session.commit()
    run("2026-01-30")
    request = db.session.scalar(sa.select(ReadingRequest))
    assert request.sent_at is None and reading_emails() == []


# Signed links


def emailed_link(app, index: int = 0) -> str:
    with app.app_context():
        message = db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.dedupe_key.like("reading-request:%"))
            .order_by(OutboxMessage.id)
        ).all()[index]
        return LINK_RE.search(as_sent(message)[1]).group(1)


@pytest.fixture
def two_requests(app):
    """Two customers, each with a request emailed on 2026-01-30; returns their request ids."""
    with app.app_context():
        setup_contract("KY1", "Studio Bianchi")
        setup_contract("KY2", "Farmacia Verdi")
        run("2026-01-30")
        return [r.id for r in db.session.scalars(sa.select(ReadingRequest).order_by(ReadingRequest.id))]


def test_emailed_link_opens_its_request_page_without_a_password(app, two_requests):
    client = app.test_client()
    response = client.get(emailed_link(app))
    assert response.status_code == 302
    assert response.location.startswith(f"/portal/readings/request/{two_requests[0]}")
    page = client.get(response.location)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "KY1" in text and 'name="d' in text
    with app.app_context():
        assert db.session.get(ReadingRequest, two_requests[0]).opened_at is not None


def test_link_opens_nothing_else_another_request_or_the_portal(app, two_requests):
    client = app.test_client()
    client.get(emailed_link(app))
    assert client.get(f"/portal/readings/request/{two_requests[1]}").status_code == 404
    assert client.get("/portal/readings/request/999999").status_code == 404
    assert client.get("/portal/readings/").status_code == 302  # the portal itself still asks to log in
    assert client.get("/portal/readings/history").status_code == 302
    stranger = app.test_client()
    assert stranger.get(f"/portal/readings/request/{two_requests[0]}").status_code == 404


def test_expired_or_altered_link_is_refused_with_a_clear_page(app, two_requests):
    link = emailed_link(app)
    with app.app_context():
        for row in db.session.scalars(sa.select(ReadingRequestLink)):
            row.expires_at = utcnow() - dt.timedelta(minutes=1)
        db.session.commit()
    client = app.test_client()
    expired = client.get(link + "?lang=it")
    assert expired.status_code == 410 and "scaduto" in expired.get_data(as_text=True)
    altered = client.get(link[:-3] + "abc")
    assert altered.status_code == 404
    assert client.get(f"/portal/readings/request/{two_requests[0]}").status_code == 404


def test_link_of_one_request_cannot_be_reused_for_another(app, two_requests):
    token = emailed_link(app).rsplit("/", 1)[1]
    with app.app_context():
        forged = campaigns._serializer().dumps({"r": two_requests[1], "n": "guess"})
    client = app.test_client()
    assert client.get(f"/portal/readings/link/{forged}").status_code == 404
    assert client.get(f"/portal/readings/link/{token}").status_code == 302


# The board


def staff_client(app, role: str = "back_office"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def test_board_counts_requests_and_resend_emails_again(app, two_requests):
    client = staff_client(app)
    client.get(emailed_link(app))
    page = client.get("/admin/metering_campaigns/").get_data(as_text=True)
    assert 'data-count="pending">2<' in page and 'data-count="opened">1<' in page
    assert "Studio Bianchi" in page and "Farmacia Verdi" in page
    token = CSRF_RE.search(page).group(1)
    response = client.post(
        f"/admin/metering_campaigns/{two_requests[1]}/resend", data={"csrf_token": token}, follow_redirects=True
    )
    assert "was emailed again to Farmacia Verdi" in response.get_data(as_text=True)
    with app.app_context():
        keys = [key for key, _to in reading_emails()]
    assert f"reading-resend:{two_requests[1]}:2" in keys
    filtered = client.get("/admin/metering_campaigns/?status=opened").get_data(as_text=True)
    assert "Studio Bianchi" in filtered and "Farmacia Verdi" not in filtered


def test_board_links_each_request_to_its_outbox_message(app, two_requests):
    client = staff_client(app)
    page = client.get("/admin/metering_campaigns/?q=bianchi").get_data(as_text=True)
    with app.app_context():
        message_id = db.session.scalar(
            sa.select(OutboxMessage.id).where(OutboxMessage.dedupe_key == f"reading-request:{two_requests[0]}")
        )
    assert f'href="/admin/outbox/{message_id}"' in page and "Farmacia Verdi" not in page


def test_resend_needs_the_csrf_token_and_the_permission(app, two_requests):
    client = staff_client(app)
    assert client.post(f"/admin/metering_campaigns/{two_requests[0]}/resend").status_code == 400
    limiter.reset()
    with app.app_context():
        customer_id = db.session.get(ReadingRequest, two_requests[0]).customer_id
        make_user("cliente@example.it", "customer_admin", customer_id=customer_id)
    customer_client = app.test_client()
    login(customer_client, "cliente@example.it", url="/portal/login")
    assert customer_client.get("/admin/metering_campaigns/").status_code in (302, 403)


# The daily job on a real worker


def work_burst(app) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        jobs.build_worker(app).work(burst=True, with_scheduler=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_worker_schedule_runs_the_daily_job_once_against_real_redis(app, redis_url, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    with app.app_context():
        today = local_date(utcnow())
        start = today - dt.timedelta(days=20)
        _customer, _device, contract_id = setup_contract(start_date=start.isoformat())
        period_end = campaigns.periods(start, 1, None, until=today)[-1].end
        db.session.add(ReadingSchedule(contract_id=contract_id, rule="days_before_end", days=(period_end - today).days))
        db.session.commit()
        fired = jobs.last_firing("0 6 * * *", utcnow())
        since = fired - dt.timedelta(minutes=1)
        started = jobs.run_due_periodic_jobs(since, fired)
        again = jobs.run_due_periodic_jobs(since, fired)
    assert f"periodic:metering.send_reading_requests:{fired:%Y-%m-%dT%H:%M}" in started and again == []
    work_burst(app)
    with app.app_context():
        db.session.remove()
        requests = db.session.scalars(sa.select(ReadingRequest)).all()
        assert [(r.due_date, r.status) for r in requests] == [(today, "pending")]
        assert len(reading_emails()) == 1


def test_dealer_chooses_the_period_end_for_a_contract_in_the_back_office(app):
    with app.app_context():
        _customer, _device, contract_id = setup_contract()
    client = staff_client(app)
    form = client.get("/admin/metering_schedule/new/").get_data(as_text=True)
    token = CSRF_RE.search(form).group(1)
    saved = client.post(
        "/admin/metering_schedule/new/",
        data={"csrf_token": token, "contract": contract_id, "rule": "period_end", "days": "0"},
    )
    assert saved.status_code == 302
    with app.app_context():
        run("2026-01-30")
        assert db.session.scalars(sa.select(ReadingRequest)).all() == []
        run("2026-01-31")
        assert [r.due_date for r in db.session.scalars(sa.select(ReadingRequest))] == [D("2026-01-31")]
    listed = client.get("/admin/metering_schedule/").get_data(as_text=True)
    assert "Last day of the period" in listed
