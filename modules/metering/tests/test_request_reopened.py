"""Staff rejecting the reading that completed a request open the request again, in the same transaction: pending
(reminders go on) or overdue past its deadline, the board shows the device missing, the emailed link asks for its
counters again; a request another reading still answers stays completed. Review queue and review API alike."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage, Partner, PartnerContact
from core.outbox import as_sent
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest
from modules.metering.tests import support as s
from tests.api_support import bearer
from tests.auth_support import CSRF_RE, login, make_user

D = dt.date.fromisoformat
LINK_RE = re.compile(r"http://[^/\s]+(/portal/readings/link/\S+)")
# The January requests go out on its last working day; the customer answers the same morning.
SENT = dt.datetime(2026, 1, 30, 7, tzinfo=dt.UTC)
ANSWERED = dt.datetime(2026, 1, 30, 9, tzinfo=dt.UTC)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def answered(app):
    """Studio Bianchi's January request for KY1 and KY2, answered through its emailed link on 30 Jan: KY2's counters
    accepted, KY1's held for review (far above its usual volume), which completes the request."""
    with time_machine.travel(SENT, tick=False), app.app_context():
        partner = Partner(name="Studio Bianchi", is_customer=True, language="en", email="info@bianchi.it")
        partner.contacts.append(PartnerContact(name="Ufficio", email="letture@bianchi.it", receives_readings=True))
        db.session.add(partner)
        db.session.flush()
        ky1, ky2 = s.device("KY1"), s.device("KY2")
        start = {"bw": 10_000, "color": 2_000}
        s.contract(partner.id, [(ky1, start), (ky2, start)], start_date="2025-11-01")
        for device in (ky1, ky2):  # two months of history at about 33 pages a day
            s.read(device, "2025-12-31", bw=12_000, color=2_400)
        db.session.commit()
        campaigns.run_campaigns(D("2026-01-30"))
        db.session.commit()
        request = db.session.scalar(sa.select(ReadingRequest))
        message = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.dedupe_key.like("reading-request:%")))
        link = LINK_RE.search(as_sent(message)[1]).group(1)
        ids = {"customer": partner.id, "request": request.id, "KY1": ky1.id, "KY2": ky2.id}

    customer = app.test_client()
    with time_machine.travel(ANSWERED, tick=False):
        page_url = customer.get(link).location
        form = customer.get(page_url).get_data(as_text=True)
        fields = {
            f"d{ids['KY1']}-bw": "90000",
            f"d{ids['KY1']}-color": "2500",
            f"d{ids['KY2']}-bw": "12900",
            f"d{ids['KY2']}-color": "2500",
        }
        sent = customer.post(page_url, data={"csrf_token": CSRF_RE.search(form).group(1), "step": "confirm", **fields})
        assert sent.status_code == 302, text(sent)
    with app.app_context():
        portal = db.session.scalars(sa.select(Reading).where(Reading.source == "portal"))
        readings = {reading.device.serial: reading for reading in portal}
        assert (readings["KY1"].status, readings["KY2"].status) == ("pending_review", "accepted")
        assert db.session.get(ReadingRequest, ids["request"]).status == "completed"
        ids["held"] = readings["KY1"].id
    return {**ids, "customer_client": customer, "page": page_url}


def request_state(app, request_id: int) -> tuple[str, dt.datetime | None, dict[str, str | None]]:
    """The request's status, completion time and, per device, the status of the reading answering it."""
    with app.app_context():
        request = db.session.get(ReadingRequest, request_id)
        items = {item.device.serial: item.reading.status if item.reading else None for item in request.items}
        return request.status, request.completed_at, items


def staff_client(app, role: str = "back_office"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def reject_in_review_queue(client, reading_id: int, reason: str = "The customer typed an extra digit."):
    page = client.get("/admin/metering_review/").get_data(as_text=True)
    row = re.search(rf'<tr id="reading-{reading_id}">.*?</tr>', page, re.S).group(0)
    assert "Black and white 90,000, Colour 2,500" in row  # meters by their label, numbers in the user's format
    return client.post(
        f"/admin/metering_review/{reading_id}/reject",
        data={"csrf_token": CSRF_RE.search(page).group(1), "reason": reason},
        follow_redirects=True,
    )


def board_row(client) -> str:
    page = client.get("/admin/metering_campaigns/?q=Bianchi").get_data(as_text=True)
    return re.search(r'<tr data-request="\d+">.*?</tr>', page, re.S).group(0)


def reminders(app) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like("reading-reminder:%"))
            )
        )


def test_rejecting_in_the_review_queue_opens_the_request_again_for_that_device(app, answered):
    with time_machine.travel(dt.datetime(2026, 1, 30, 15, tzinfo=dt.UTC), tick=False):
        staff = staff_client(app)
        done = reject_in_review_queue(staff, answered["held"])
        assert "Reading of KY1 rejected: Studio Bianchi is asked for its counters again." in text(done)

        status, completed_at, items = request_state(app, answered["request"])
        assert (status, completed_at, items) == ("pending", None, {"KY1": None, "KY2": "accepted"})
        row = board_row(staff)
        assert 'data-status="pending"' in row
        ky1 = re.search(r'data-item="KY1">.*?</div>', row, re.S).group(0)
        assert "missing" in ky1 and "data-reading-status" not in ky1
        assert 'data-reading-status="accepted"' in re.search(r'data-item="KY2">.*?</div>', row, re.S).group(0)

        # The emailed link asks again for KY1 only.
        page = text(answered["customer_client"].get(answered["page"]))
        assert f'name="d{answered["KY1"]}-bw"' in page and f'name="d{answered["KY2"]}-bw"' not in page

    # Reminders go on: the first one three days after the request was emailed.
    with time_machine.travel(dt.datetime(2026, 2, 2, 7, tzinfo=dt.UTC), tick=False), app.app_context():
        campaigns.run_campaigns(D("2026-02-02"))
        db.session.commit()
    assert reminders(app) == [f"reading-reminder:{answered['request']}:1"]


def test_rejecting_through_the_api_after_the_deadline_makes_the_request_overdue(app, answered):
    with app.app_context():
        headers = bearer("back_office")
    # The deadline was 10 Feb (the end of January plus 10 days' grace).
    with time_machine.travel(dt.datetime(2026, 2, 15, 9, tzinfo=dt.UTC), tick=False):
        url = f"/api/v1/readings/{answered['held']}/reject"
        response = app.test_client().post(url, json={"reason": "Not this device's counter."}, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert request_state(app, answered["request"]) == ("overdue", None, {"KY1": None, "KY2": "accepted"})
        with app.app_context():
            assert db.session.get(ReadingRequest, answered["request"]).overdue_at is not None
        assert 'data-status="overdue"' in board_row(staff_client(app))


def test_request_another_reading_still_answers_stays_completed(app, answered):
    with time_machine.travel(dt.datetime(2026, 1, 31, 9, tzinfo=dt.UTC), tick=False), app.app_context():
        # The technician read KY1 the next day (after the held reading had completed the request).
        s.read(db.session.get(s.Device, answered["KY1"]), "2026-01-31", bw=12_950, color=2_450)
        db.session.commit()
    with time_machine.travel(dt.datetime(2026, 1, 31, 15, tzinfo=dt.UTC), tick=False):
        done = reject_in_review_queue(staff_client(app), answered["held"])
        assert "Reading of KY1 rejected." in text(done) and "asked for its counters again" not in text(done)
        status, completed_at, items = request_state(app, answered["request"])
        assert (status, items) == ("completed", {"KY1": "accepted", "KY2": "accepted"}) and completed_at is not None


def test_failed_rejection_leaves_the_request_completed(app, answered):
    with app.app_context():
        headers = bearer("back_office")
    with time_machine.travel(dt.datetime(2026, 1, 30, 15, tzinfo=dt.UTC), tick=False):
        client = app.test_client()
        empty = client.post(f"/api/v1/readings/{answered['held']}/reject", json={"reason": " "}, headers=headers)
        assert empty.status_code == 422
        assert request_state(app, answered["request"])[0] == "completed"
