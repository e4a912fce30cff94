"""The metering back office through its real forms and CSRF tokens: enter, list, review, replace, import."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import AuditLog
from modules.metering.models import MeterReplacement, Reading
from modules.metering.readings import record_reading
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE, login, make_customer, make_user


def logged_in(app, role: str, customer: bool = False):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role, customer_id=make_customer("Cliente") if customer else None)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def submit(client, url: str, data: dict, form_url: str | None = None, **kwargs):
    token = CSRF_RE.search(client.get(form_url or url).get_data(as_text=True)).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


@pytest.fixture
def device(app):
    with app.app_context():
        customer = s.customer("Studio Rossi")
        device = s.device("KY1")
        s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
        db.session.commit()
        return device.id


def readings(app) -> list[tuple]:
    with app.app_context():
        return [
            (r.status, r.source, r.counters, r.reason)
            for r in db.session.scalars(sa.select(Reading).order_by(Reading.id))
        ]


def test_technician_enters_a_reading_with_one_field_per_meter(app, device):
    client = logged_in(app, "technician")
    page = client.get("/admin/metering_entry/?serial=ky 1").get_data(as_text=True)
    assert 'name="counter_bw"' in page and 'name="counter_color"' in page
    assert "10,000" in page  # the installation counter is the last value known
    url = f"/admin/metering_entry/?device_id={device}"
    response = submit(
        client,
        "/admin/metering_entry/",
        {"device_id": device, "taken_at": "2026-02-02T09:30", "counter_bw": "11850", "counter_color": "2310"},
        form_url=url,
    )
    assert response.status_code == 302
    assert readings(app) == [("accepted", "staff", {"bw": 11_850, "color": 2_310}, None)]
    assert "11,850" in client.get(url).get_data(as_text=True)


def test_backwards_counter_is_shown_on_its_field_and_nothing_saved(app, device):
    client = logged_in(app, "technician")
    url = f"/admin/metering_entry/?device_id={device}"
    response = submit(
        client,
        "/admin/metering_entry/",
        {"device_id": device, "taken_at": "2026-02-02T09:30", "counter_bw": "9000"},
        form_url=url,
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "is-invalid" in page and "10,000" in page and 'value="9000"' in page
    assert readings(app) == []


def test_form_without_csrf_token_is_refused(app, device):
    client = logged_in(app, "technician")
    response = client.post("/admin/metering_entry/", data={"device_id": device, "counter_bw": "11000"})
    assert response.status_code == 400
    assert readings(app) == []


def test_customers_cannot_open_the_back_office_pages(app, device):
    client = logged_in(app, "customer_admin", customer=True)
    for url in (
        "/admin/metering_entry/",
        "/admin/metering_reading/",
        "/admin/metering_review/",
        "/admin/metering_import/",
    ):
        assert client.get(url).status_code == 403


def test_readings_list_filters_by_status(app, device):
    with app.app_context():
        record_reading(device, s.at("2026-02-02"), {"bw": 11_000}, source="api")
        db.session.commit()
    client = logged_in(app, "back_office")
    page = client.get("/admin/metering_reading/?search=KY1").get_data(as_text=True)
    assert "Studio Rossi" in page and "bw 11,000" in page


def _held(app, device) -> int:
    with app.app_context():
        s.read(db.session.get(s.Device, device), "2026-03-02", bw=16_000)
        reading = record_reading(device, s.at("2026-04-01"), {"bw": 46_000}).reading
        db.session.commit()
        assert reading.status == "pending_review"
        return reading.id


def test_staff_accept_a_held_reading_from_the_review_queue(app, device):
    held = _held(app, device)
    client = logged_in(app, "back_office")
    page = client.get("/admin/metering_review/").get_data(as_text=True)
    assert f'id="reading-{held}"' in page and "46,000" in page
    response = submit(client, f"/admin/metering_review/{held}/approve", {}, form_url="/admin/metering_review/")
    assert response.status_code == 302
    assert readings(app)[-1][0] == "accepted"
    with app.app_context():
        audit = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "reading.approved")).one()
        assert audit.actor == "back_office@example.it"
    assert "No reading is waiting" in client.get("/admin/metering_review/").get_data(as_text=True)


def test_staff_reject_a_held_reading_with_a_reason(app, device):
    held = _held(app, device)
    client = logged_in(app, "technician")
    submit(client, f"/admin/metering_review/{held}/reject", {"reason": "Typo"}, form_url="/admin/metering_review/")
    assert readings(app)[-1][0::3] == ("rejected", "Typo")


def test_meter_replacement_form_records_the_event(app, device):
    client = logged_in(app, "technician")
    response = submit(
        client,
        "/admin/metering_replacement/new/",
        {"device": str(device), "date": "2026-02-10", "meter": "bw", "old_final": "10500", "new_start": "0"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        event = db.session.scalars(sa.select(MeterReplacement)).one()
        assert (event.meter, event.old_final, event.new_start) == ("bw", 10_500, 0)


def test_meter_replacement_for_a_meter_the_device_lacks_is_refused_on_the_field(app, device):
    client = logged_in(app, "technician")
    response = submit(
        client,
        "/admin/metering_replacement/new/",
        {"device": str(device), "date": "2026-02-10", "meter": "fax", "old_final": "1", "new_start": "0"},
    )
    assert response.status_code == 200 and "has no fax meter" in response.get_data(as_text=True)


def test_import_page_checks_then_imports(app, device):
    client = logged_in(app, "back_office")
    assert "serial,taken_at,meter,value" in client.get("/admin/metering_import/template/long.csv").get_data(
        as_text=True
    )
    csv = b"serial,taken_at,bw,color\nKY1,2026-02-02 09:30,11850,2310\n"
    check = submit(
        client,
        "/admin/metering_import/run/",
        {"step": "check", "file": (io.BytesIO(csv), "readings.csv")},
        form_url="/admin/metering_import/",
        content_type="multipart/form-data",
    )
    assert "Every row is right" in check.get_data(as_text=True)
    assert readings(app) == []
    done = submit(
        client,
        "/admin/metering_import/run/",
        {"step": "import", "content": csv.decode()},
        form_url="/admin/metering_import/",
    )
    assert done.status_code == 302
    assert readings(app) == [("accepted", "csv", {"bw": 11_850, "color": 2_310}, None)]


def test_rejecting_a_held_reading_without_a_reason_says_why_and_keeps_it_held(app, device):
    held = _held(app, device)
    client = logged_in(app, "technician")
    response = submit(
        client, f"/admin/metering_review/{held}/reject", {"reason": " "}, form_url="/admin/metering_review/"
    )
    assert response.status_code == 302
    assert "Say why the reading is rejected." in client.get("/admin/metering_review/").get_data(as_text=True)
    assert readings(app)[-1][0] == "pending_review"
