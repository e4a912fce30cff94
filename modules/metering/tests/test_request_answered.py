"""A reading completes the request it answers at once, whatever the channel; the emailed link outlives the deadline
it states; the board says what became of the emails; staff ask a customer now; the review API."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage, Partner, PartnerContact
from core.outbox import as_sent
from core.settings import set_setting
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest
from modules.metering.readings import approve_reading
from modules.metering.tests import support as s
from tests.api_support import bearer
from tests.auth_support import CSRF_RE, login, make_user

D = dt.date.fromisoformat
LINK_RE = re.compile(r"(http://[^/\s]+)(/portal/readings/link/\S+)")
# The morning the January requests go out (the last working day of January 2026).
SENT = dt.datetime(2026, 1, 30, 7, tzinfo=dt.UTC)


@pytest.fixture
def asked(app):
    """Studio Bianchi with a colour device on a monthly contract, and its January request emailed on 30 Jan."""
    with time_machine.travel(SENT, tick=False), app.app_context():
        partner = Partner(name="Studio Bianchi", is_customer=True, language="it", email="info@bianchi.it")
        partner.contacts.append(PartnerContact(name="Ufficio", email="letture@bianchi.it", receives_readings=True))
        db.session.add(partner)
        db.session.flush()
        device = s.device("KY1")
        s.contract(partner.id, [(device, {"bw": 10_000, "color": 2_000})])
        db.session.commit()
        campaigns.run_campaigns(D("2026-01-30"))
        db.session.commit()
        request = db.session.scalar(sa.select(ReadingRequest))
        return {"customer": partner.id, "device": device.id, "request": request.id}


def request_status(app, request_id: int) -> tuple[str, list[int | None]]:
    with app.app_context():
        request = db.session.get(ReadingRequest, request_id)
        return request.status, [item.reading_id for item in request.items]


def staff_client(app, role: str = "back_office"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


# Defect 1: completed at once, by any channel


def test_staff_reading_completes_its_request_at_once_without_waiting_for_the_daily_run(app, asked):
    client = staff_client(app, "technician")
    form = client.get(f"/admin/metering_entry/?device_id={asked['device']}").get_data(as_text=True)
    response = client.post(
        "/admin/metering_entry/",
        data={
            "csrf_token": CSRF_RE.search(form).group(1),
            "device_id": asked["device"],
            "taken_at": "2026-01-31T10:00",
            "counter_bw": "11000",
            "counter_color": "2100",
        },
    )
    assert response.status_code == 302
    status, readings = request_status(app, asked["request"])
    assert status == "completed" and readings[0] is not None
    board = staff_client(app).get("/admin/metering_campaigns/?status=pending").get_data(as_text=True)
    assert "Studio Bianchi" not in board


def test_api_reading_completes_its_request_at_once(app, asked):
    with app.app_context():
        headers = bearer("technician")
    body = {"device_id": asked["device"], "taken_at": "2026-01-31T10:00:00Z", "counters": {"bw": 11_000}}
    assert app.test_client().post("/api/v1/readings", json=body, headers=headers).status_code == 201
    assert request_status(app, asked["request"])[0] == "completed"


def test_reading_approved_in_review_completes_the_request_it_answers(app, asked):
    with app.app_context():
        request = db.session.get(ReadingRequest, asked["request"])
        # Held for review before the request could see it (as a reading imported with that status would be).
        reading = s.read(db.session.get(s.Device, asked["device"]), "2026-01-31", bw=11_000, color=2_100)
        reading.status = "pending_review"
        request.items[0].reading_id = None
        request.status = "pending"
        db.session.commit()
        approve_reading(db.session.get(Reading, reading.id), None)
        db.session.commit()
    assert request_status(app, asked["request"])[0] == "completed"


def test_reading_after_the_device_left_the_contract_answers_none_of_its_requests(app, asked):
    from modules.rentals.models import ContractLine

    with app.app_context():
        line = db.session.scalar(sa.select(ContractLine).where(ContractLine.device_id == asked["device"]))
        line.end_date = D("2026-01-25")
        db.session.commit()
        s.read(db.session.get(s.Device, asked["device"]), "2026-01-31", bw=11_000, color=2_100)
        db.session.commit()
    assert request_status(app, asked["request"]) == ("pending", [None])


# Defect 2: the link outlives the deadline it states


def emailed_link(app) -> tuple[str, str]:
    with app.app_context():
        message = db.session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.dedupe_key.like("reading-request:%"))
        ).first()
        return LINK_RE.search(as_sent(message)[1]).groups(), as_sent(message)[1]


def test_emailed_link_works_until_the_deadline_plus_the_reminders_span(app):
    with time_machine.travel(SENT, tick=False), app.app_context():
        set_setting("metering.link_days", 5)  # shorter than the 10 days' grace of the contract
        db.session.commit()
    with time_machine.travel(SENT, tick=False), app.app_context():
        partner = Partner(name="Studio Bianchi", is_customer=True, language="en", email="info@bianchi.it")
        db.session.add(partner)
        db.session.flush()
        s.contract(partner.id, [(s.device("KY1"), {"bw": 10_000, "color": 2_000})])
        campaigns.run_campaigns(D("2026-01-30"))
        db.session.commit()
    (_base, path), body = emailed_link(app)
    # Deadline 10 Feb (period end + 10 days' grace); 3 reminders every 3 days: the link works through 19 Feb.
    assert "Please send them by Feb 10, 2026. The link works until Feb 19, 2026" in body
    with time_machine.travel(dt.datetime(2026, 2, 19, 22, 30, tzinfo=dt.UTC), tick=False):  # 23:30 in Rome
        assert app.test_client().get(path).status_code == 302
    with time_machine.travel(dt.datetime(2026, 2, 19, 23, 30, tzinfo=dt.UTC), tick=False):  # 20 Feb in Rome
        assert app.test_client().get(path).status_code == 410


# Defect 9: the board says what became of the emails


def test_board_says_the_emails_are_kept_in_the_outbox_not_emailed(app, asked):
    page = staff_client(app).get("/admin/metering_campaigns/").get_data(as_text=True)
    assert 'data-email-outcome="kept"' in page and "Kept in the outbox (no mail server configured): <strong>1" in page
    assert 'data-email-outcome="sent"' not in page and "1 of 1 requests emailed" not in page
    assert 'data-email-status="kept"' in page


# Ask this customer now


def test_staff_ask_a_customer_now_from_the_board_with_the_csrf_token(app):
    with time_machine.travel(dt.datetime(2026, 1, 12, 9, tzinfo=dt.UTC), tick=False):
        with app.app_context():
            partner = Partner(name="Studio Bianchi", is_customer=True, language="it", email="info@bianchi.it")
            db.session.add(partner)
            db.session.flush()
            s.contract(partner.id, [(s.device("KY1"), {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
            campaigns.run_campaigns(D("2026-01-02"))
            db.session.commit()
            customer_id = partner.id
        client = staff_client(app)
        page = client.get("/admin/metering_campaigns/").get_data(as_text=True)
        action = f"/admin/metering_campaigns/customer/{customer_id}/ask-now"
        assert f'action="{action}"' in page
        assert client.post(action).status_code == 400
        response = client.post(action, data={"csrf_token": CSRF_RE.search(page).group(1)}, follow_redirects=True)
        assert "Studio Bianchi was asked for the counters now." in response.get_data(as_text=True)
        with app.app_context():
            due = db.session.scalars(
                sa.select(ReadingRequest.due_date).where(ReadingRequest.customer_id == customer_id)
            )
            assert D("2026-01-30") in list(due)
        again = client.post(action, data={"csrf_token": CSRF_RE.search(page).group(1)}, follow_redirects=True)
        assert "Nothing to ask Studio Bianchi now" in again.get_data(as_text=True)


# The review API


@pytest.fixture
def held(app, asked):
    """A reading of KY1 held for review (a jump far beyond its usual volume), and the id of a plain accepted one."""
    with app.app_context():
        device = db.session.get(s.Device, asked["device"])
        accepted = s.read(device, "2026-01-31", bw=11_000, color=2_100)
        reading = s.read(device, "2026-03-31", bw=90_000, color=2_200)
        assert reading.status == "pending_review"
        db.session.commit()
        return {"held": reading.id, "accepted": accepted.id}


def test_reviewer_approves_a_held_reading_through_the_api(app, held):
    with app.app_context():
        headers = bearer("back_office")
    client = app.test_client()
    response = client.post(f"/api/v1/readings/{held['held']}/approve", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "accepted"
    again = client.post(f"/api/v1/readings/{held['held']}/approve", headers=headers)
    assert again.status_code == 409
    assert client.post(f"/api/v1/readings/{held['accepted']}/approve", headers=headers).status_code == 409


def test_reviewer_rejects_with_a_reason_and_an_empty_reason_is_422(app, held):
    with app.app_context():
        headers = bearer("back_office")
    client = app.test_client()
    url = f"/api/v1/readings/{held['held']}/reject"
    empty = client.post(url, json={"reason": "  "}, headers=headers)
    assert empty.status_code == 422
    assert [error["field"] for error in empty.get_json()["errors"]] == ["reason"]
    response = client.post(url, json={"reason": "The customer typed an extra digit."}, headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "rejected"
    assert response.get_json()["reason"] == "The customer typed an extra digit."


def test_review_api_is_404_to_customers(app, asked, held):
    with app.app_context():
        customer = db.session.get(Partner, asked["customer"])
        tokens = [bearer("customer_admin", customer=customer), bearer("customer_user", customer=customer)]
    client = app.test_client()
    for headers in tokens:
        assert client.post(f"/api/v1/readings/{held['held']}/approve", headers=headers).status_code == 404
        reject = client.post(f"/api/v1/readings/{held['held']}/reject", json={"reason": "x"}, headers=headers)
        assert reject.status_code == 404
    with app.app_context():
        assert db.session.get(Reading, held["held"]).status == "pending_review"


def test_review_api_is_in_the_openapi_document(app):
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    assert {"409", "404"} <= set(paths["/api/v1/readings/{reading_id}/approve"]["post"]["responses"])
    assert "/api/v1/readings/{reading_id}/reject" in paths
    schema = app.test_client().get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Reject"]
    assert schema["required"] == ["reason"]
