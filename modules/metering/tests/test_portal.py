"""The customer's reading portal through real forms: devices and what is due, enter, review, confirm, the same
validation as every channel (in the customer's language), history, and nothing of another customer reachable."""

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
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE, login, make_user

D = dt.date.fromisoformat


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def world(app):
    """Two customers, each with a colour device on a monthly contract, a reading in January, and a user."""
    with app.app_context():
        ids = {}
        for name, serial, language in (("Studio Bianchi", "KY1", "it"), ("Farmacia Verdi", "KY2", "es")):
            partner = Partner(name=name, is_customer=True, language=language)
            partner.contacts.append(
                PartnerContact(name="Letture", email=f"letture@{serial.lower()}.it", receives_readings=True)
            )
            db.session.add(partner)
            db.session.flush()
            device = s.device(serial)
            device.site = "Reception, 2nd floor"
            s.contract(partner.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
            s.read(device, "2026-01-30", bw=11_850, color=2_310)
            db.session.commit()
            make_user(f"user@{serial.lower()}.it", "customer_user", customer_id=partner.id)
            ids[serial] = {"customer": partner.id, "device": device.id}
        campaigns.create_due_requests(D("2026-02-27"))
        db.session.commit()
        for serial in ids:
            ids[serial]["request"] = db.session.scalar(
                sa.select(ReadingRequest.id).where(ReadingRequest.customer_id == ids[serial]["customer"])
            )
        return ids


def customer_client(app, serial: str = "KY1"):
    limiter.reset()
    client = app.test_client()
    assert login(client, f"user@{serial.lower()}.it", url="/portal/login").status_code == 302
    return client


def post(client, url: str, data: dict, **kwargs):
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def stored(app) -> list[tuple]:
    with app.app_context():
        query = sa.select(Reading).order_by(Reading.id)  # PostgreSQL keeps no insertion order
        return [(r.device.serial, r.source, r.status, r.counters) for r in db.session.scalars(query)]


def test_portal_home_offers_meter_readings_to_customer_users(app, world):
    page = text(customer_client(app).get("/portal/"))
    assert "/portal/readings/" in page


def test_customer_sees_its_devices_with_last_reading_and_what_is_due(app, world):
    page = text(customer_client(app).get("/portal/readings/"))
    assert "KY1" in page and "ECOSYS M5526cdw" in page and "Reception, 2nd floor" in page
    assert "11.850" in page  # Italian grouping of the last bw counter
    assert "27 feb 2026" in page  # the request's due date
    assert "KY2" not in page


def test_reading_entered_in_portal_is_reviewed_confirmed_and_accepted(app, world):
    client = customer_client(app)
    url = f"/portal/readings/request/{world['KY1']['request']}"
    fields = {f"d{world['KY1']['device']}-bw": "12.900", f"d{world['KY1']['device']}-color": "2500"}
    review = post(client, url, {**fields, "step": "review"})
    page = text(review)
    assert review.status_code == 200 and "12.900" in page and "+1.050" in page
    assert len(stored(app)) == 2  # nothing written yet
    taken_at = re.search(r'name="taken_at" value="([^"]+)"', page).group(1)
    confirm = post(client, url, {**fields, "step": "confirm", "taken_at": taken_at})
    assert confirm.status_code == 302
    done = text(client.get(confirm.location))
    assert "12.900" in done and "KY1" in done
    assert stored(app)[-1] == ("KY1", "portal", "accepted", {"bw": 12_900, "color": 2_500})
    with app.app_context():
        request = db.session.get(ReadingRequest, world["KY1"]["request"])
        assert request.status == "completed"
        confirmation = db.session.scalar(
            sa.select(OutboxMessage).where(OutboxMessage.dedupe_key.like("reading-confirmation:%"))
        )
        assert confirmation.recipients == ["user@ky1.it"] and "12.900" in confirmation.body_text
    again = post(client, url, {**fields, "step": "confirm", "taken_at": taken_at})  # a double click
    assert again.status_code == 200 and len(stored(app)) == 3  # the request page now says all arrived


def test_reading_accepted_in_portal_shows_accepted_on_the_staff_board(app, world):
    client = customer_client(app)
    url = "/portal/readings/enter"
    fields = {f"d{world['KY1']['device']}-bw": "12900", f"d{world['KY1']['device']}-color": "2500"}
    assert post(client, url, {**fields, "step": "confirm"}).status_code == 302
    limiter.reset()
    with app.app_context():
        make_user("office@example.it", "back_office")
    staff = app.test_client()
    login(staff, "office@example.it")
    board = text(staff.get("/admin/metering_campaigns/?status=completed"))
    assert "Studio Bianchi" in board and 'data-reading-status="accepted"' in board
    readings = text(staff.get("/admin/metering_reading/"))
    assert "KY1" in readings and "Portal" in readings


def test_lower_counter_is_refused_in_italian_naming_the_last_value_and_date(app, world):
    client = customer_client(app)
    device = world["KY1"]["device"]
    response = post(
        client, "/portal/readings/enter", {f"d{device}-bw": "11000", f"d{device}-color": "2400", "step": "review"}
    )
    page = text(response)
    assert response.status_code == 422
    # The customer's terms: the meter's label, numbers and the date in Italian, what to do (never "record it first").
    assert "Il contatore Bianco e nero che hai inserito, 11.000, è inferiore all'ultimo rilevato, 11.850" in page
    assert "30 gennaio 2026" in page
    assert "avvisaci" in page and "sostituzione" not in page
    assert len(stored(app)) == 2


def test_spanish_customer_reads_the_error_in_spanish(app, world):
    client = customer_client(app, "KY2")
    device = world["KY2"]["device"]
    response = post(
        client, "/portal/readings/enter", {f"d{device}-bw": "abc", f"d{device}-color": "", "step": "review"}
    )
    page = text(response)
    assert response.status_code == 422 and 'lang="es"' in page
    assert "El contador bw no es un número entero: abc" in page
    assert "Introduce el contador Color." in page


def test_empty_form_asks_for_at_least_one_device(app, world):
    response = post(customer_client(app), "/portal/readings/enter", {"step": "review"})
    assert response.status_code == 422
    assert "Inserisci i contatori di almeno un dispositivo." in text(response)


def test_toner_level_over_100_is_refused_and_nothing_is_written(app, world):
    device = world["KY1"]["device"]
    fields = {f"d{device}-bw": "12900", f"d{device}-color": "2500", f"d{device}-toner-cyan": "140", "step": "confirm"}
    response = post(customer_client(app), "/portal/readings/enter", fields)
    assert response.status_code == 422 and len(stored(app)) == 2


def test_another_customers_device_and_request_answer_404(app, world):
    client = customer_client(app)
    other = world["KY2"]
    assert client.get(f"/portal/readings/enter?device={other['device']}").status_code == 404
    assert client.get(f"/portal/readings/history?device={other['device']}").status_code == 404
    assert client.get(f"/portal/readings/request/{other['request']}").status_code == 404
    assert client.get(f"/portal/readings/done/{other['request']}").status_code == 404
    fields = {f"d{other['device']}-bw": "99999", f"d{other['device']}-color": "9999"}
    fields.update({f"d{world['KY1']['device']}-bw": "12900", f"d{world['KY1']['device']}-color": "2500"})
    post(client, "/portal/readings/enter", {**fields, "step": "confirm"})
    assert [serial for serial, *_rest in stored(app)] == ["KY1", "KY2", "KY1"]
    assert ("KY2", "portal") not in [(serial, source) for serial, source, *_rest in stored(app)]


def test_history_lists_only_readings_taken_while_the_device_was_the_customers(app, world):
    client = customer_client(app)
    page = text(client.get("/portal/readings/history"))
    assert "11.850" in page and "KY2" not in page


def test_staff_opening_the_portal_page_go_to_the_back_office(app, world):
    limiter.reset()
    with app.app_context():
        make_user("tech@example.it", "technician")
    staff = app.test_client()
    login(staff, "tech@example.it")
    response = staff.get("/portal/readings/")
    assert response.status_code == 302 and response.location.endswith("/admin/")


def test_reading_sent_through_a_requests_link_answers_it_on_the_first_day_of_the_period(app, world):
    """A request asked early (the portal's "ask now") counts other channels' readings only from a few days into the
    period; one sent through that very request answers it whenever it comes."""
    with time_machine.travel(dt.datetime(2026, 3, 2, 11, 30, tzinfo=dt.UTC), tick=True):
        with app.app_context():
            (asked,) = campaigns.request_now(world["KY1"]["customer"], D("2026-03-02"))
            db.session.commit()
            asked_id = asked.id
            assert asked.items[0].since > D("2026-03-02")
        client = customer_client(app)
        device = world["KY1"]["device"]
        fields = {f"d{device}-bw": "12900", f"d{device}-color": "2500", "step": "confirm"}
        assert post(client, f"/portal/readings/request/{asked_id}", fields).status_code == 302
    with app.app_context():
        answered = db.session.get(ReadingRequest, asked_id)
        assert answered.status == "completed"
        assert answered.items[0].reading.counters == {"bw": 12_900, "color": 2_500}
