"""A device that moved from one customer to another: each sees and writes only the readings of its own tenure."""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.extensions import limiter
from core.models import Partner
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest
from modules.metering.tests import support as s
from modules.rentals.contract_lines import remove_device
from tests.api_support import add_customer, bearer
from tests.auth_support import CSRF_RE, login, make_user

D = dt.date.fromisoformat


@pytest.fixture
def moved(app):
    """Device KY1 on Bianchi's contract from January to June, then on Verdi's from July, with readings of each."""
    with app.app_context():
        before = add_customer("Studio Bianchi", language="it")
        after = add_customer("Farmacia Verdi", language="it")
        device = s.device("KY1")
        old = s.contract(before.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2026-01-01")
        ids = {"before": before.id, "after": after.id, "device": device.id}
        ids["before_readings"] = [
            s.read(device, day, bw=bw, color=color).id
            for day, bw, color in (
                ("2026-02-01", 11_000, 2_100),
                ("2026-04-01", 13_000, 2_300),
                ("2026-06-05", 15_000, 2_500),
            )
        ]
        campaigns.create_due_requests(D("2026-06-30"), [before.id])
        db.session.commit()
        ids["request"] = db.session.scalar(sa.select(ReadingRequest.id).where(ReadingRequest.customer_id == before.id))
        remove_device(old, device.id, "2026-06-30", {"bw": 15_500, "color": 2_550})
        s.contract(after.id, [(device, {"bw": 15_500, "color": 2_550})], start_date="2026-07-01")
        ids["after_readings"] = [s.read(device, "2026-08-01", bw=17_000, color=2_700).id]
        db.session.commit()
        return ids


def api_ids(client, headers, url: str) -> list[int]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(item["id"] for item in response.get_json()["items"])


def stored_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Reading.id)))


def portal_client(app, email: str, customer_id: int):
    limiter.reset()
    with app.app_context():
        make_user(email, "customer_user", customer_id=customer_id)
    client = app.test_client()
    assert login(client, email, url="/portal/login").status_code == 302
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def test_new_customer_lists_only_readings_of_its_own_tenure_through_the_api(app, moved):
    client = app.test_client()
    with app.app_context():
        headers = bearer("customer_user", customer=db.session.get(Partner, moved["after"]))
    assert api_ids(client, headers, f"/api/v1/readings?device_id={moved['device']}") == moved["after_readings"]
    assert api_ids(client, headers, "/api/v1/readings") == moved["after_readings"]
    for reading_id in moved["before_readings"]:
        assert client.get(f"/api/v1/readings/{reading_id}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/readings/{moved['after_readings'][0]}", headers=headers).status_code == 200


def test_former_customer_still_lists_the_readings_of_its_tenure_and_no_later_one(app, moved):
    client = app.test_client()
    with app.app_context():
        headers = bearer("customer_user", customer=db.session.get(Partner, moved["before"]))
    assert api_ids(client, headers, f"/api/v1/readings?device_id={moved['device']}") == moved["before_readings"]
    assert client.get(f"/api/v1/readings/{moved['after_readings'][0]}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/readings/{moved['before_readings'][0]}", headers=headers).status_code == 200


def test_staff_list_every_reading_of_the_device(app, moved):
    with app.app_context():
        headers = bearer("back_office")
    ids = api_ids(app.test_client(), headers, f"/api/v1/readings?device_id={moved['device']}")
    assert ids == sorted(moved["before_readings"] + moved["after_readings"])


def test_reading_dated_in_the_former_customers_tenure_is_refused_and_not_shown_to_it(app, moved):
    client = app.test_client()
    with app.app_context():
        headers = bearer("customer_user", customer=db.session.get(Partner, moved["after"]))
    count = stored_count(app)
    body = {"device_id": moved["device"], "taken_at": "2026-05-20T10:00:00Z", "counters": {"bw": 14_000}}
    response = client.post("/api/v1/readings", json=body, headers=headers)
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    assert list(errors) == ["taken_at"] and "2026-05-20" in errors["taken_at"]
    assert stored_count(app) == count
    history = page(portal_client(app, "letture@bianchi.it", moved["before"]), "/portal/readings/history")
    assert "11.000" in history and "13.000" in history and "15.000" in history
    assert "14.000" not in history and "17.000" not in history


def test_staff_may_still_record_a_reading_in_any_tenure(app, moved):
    body = {"device_id": moved["device"], "taken_at": "2026-05-20T10:00:00Z", "counters": {"bw": 14_000}}
    with app.app_context():
        headers = bearer("technician")
    response = app.test_client().post("/api/v1/readings", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)


def test_new_customers_portal_shows_only_its_tenure(app, moved):
    client = portal_client(app, "letture@verdi.it", moved["after"])
    history = page(client, "/portal/readings/history")
    assert "17.000" in history and "11.000" not in history and "15.000" not in history
    home = page(client, "/portal/readings/")
    assert "17.000" in home and "13.000" not in home


def test_former_customers_request_link_shows_no_later_counter_and_sends_none(app, moved):
    """Bianchi's June request link still works after the device moved: it must not show Verdi's counters, nor let
    Bianchi write a reading into Verdi's tenure."""
    client = app.test_client()
    with time_machine.travel(dt.datetime(2026, 9, 15, 9, tzinfo=dt.UTC), tick=True):
        with app.app_context():
            link, _until = campaigns.issue_link(db.session.get(ReadingRequest, moved["request"]))
            db.session.commit()
        opened = client.get(urlsplit(link).path)
        assert opened.status_code == 302
        url = opened.location
        form = page(client, url)
        assert "17.000" not in form and "15.500" in form
        token = CSRF_RE.search(form).group(1)
        device = moved["device"]
        count = stored_count(app)
        fields = {"csrf_token": token, f"d{device}-bw": "18000", f"d{device}-color": "2800", "step": "confirm"}
        refused = client.post(url, data=fields)
    assert refused.status_code == 422
    assert "2026-09-15" in html.unescape(refused.get_data(as_text=True))
    assert stored_count(app) == count
