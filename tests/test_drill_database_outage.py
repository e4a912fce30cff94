"""Drill: the database goes away for a moment. Pages and the API answer 503 (never 500), nothing is half-written,
and the same app works again once PostgreSQL is back, without a restart."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import make_app, migrate
from core.db import db
from tests.api_support import bearer
from tests.auth_support import login, make_customer, make_user
from tests.pg_server import postgres_server  # noqa: F401  (fixture)

CONTRACT = {
    "start_date": "2026-01-01",
    "period_months": 1,
    "fee": "50.00",
    "fee_timing": "advance",
    "allowances": [{"meter": "bw", "included": 1000, "pooled": False, "bands": [{"up_to": None, "price": "0.012"}]}],
}


@pytest.fixture
def outage_app(postgres_server):  # noqa: F811
    """The full app, migrated, on a PostgreSQL server this test may stop and start."""
    url = postgres_server.create_database("copydesk")
    migrate(make_app(url))
    app = make_app(url)
    yield app
    with app.app_context():
        db.engine.dispose()


def _count(app, table: str) -> int:
    with app.app_context():
        count = db.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))
        db.session.remove()
        return count


def test_requests_during_an_outage_answer_503_and_the_app_recovers_without_restart(outage_app, postgres_server):  # noqa: F811
    app = outage_app
    with app.app_context():
        make_user("office@example.com", role="back_office")
        make_user("anna@studio.it", role="customer_user", customer_id=make_customer())
        api = bearer("dealer_admin")
    staff, customer = app.test_client(), app.test_client()
    assert login(staff, "office@example.com").status_code == 302
    assert login(customer, "anna@studio.it", url="/portal/login").status_code == 302
    assert staff.get("/admin/").status_code == 200
    assert customer.get("/portal/").status_code == 200
    assert app.test_client().get("/api/v1/customers", headers=api).status_code == 200

    postgres_server.stop()

    page = staff.get("/admin/", headers={"Accept-Language": "it"})
    assert page.status_code == 503
    assert 'lang="it"' in page.get_data(as_text=True)
    assert "Errore 503" in page.get_data(as_text=True)
    assert page.headers["Retry-After"] == "30"
    portal = customer.get("/portal/", headers={"Accept-Language": "es"})
    assert portal.status_code == 503
    assert 'lang="es"' in portal.get_data(as_text=True)
    problem = app.test_client().get("/api/v1/customers", headers={**api, "Accept-Language": "en"})
    assert problem.status_code == 503
    assert problem.mimetype == "application/problem+json"
    assert problem.get_json()["title"] == "Service unavailable"
    written = app.test_client().post("/api/v1/customers", json={"name": "Studio Verdi"}, headers=api)
    assert written.status_code == 503
    health = app.test_client().get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["database"].startswith("error: ")

    postgres_server.start()

    assert staff.get("/admin/").status_code == 200
    assert customer.get("/portal/").status_code == 200
    assert app.test_client().get("/api/v1/customers", headers=api).status_code == 200
    assert app.test_client().get("/healthz").get_json()["database"] == "ok"
    created = app.test_client().post("/api/v1/customers", json={"name": "Studio Verdi"}, headers=api)
    assert created.status_code == 201


def test_a_write_cut_by_the_outage_is_stored_whole_or_not_at_all(outage_app, postgres_server):  # noqa: F811
    """The server stops after the contract's first rows reached it, before the commit: none of them may remain."""
    app = outage_app
    client = app.test_client()
    with app.app_context():
        api = bearer("dealer_admin")
    customer = client.post("/api/v1/customers", json={"name": "Studio Verdi"}, headers=api).get_json()
    device = client.post(
        "/api/v1/devices",
        json={"serial": "KY-0001", "manufacturer": "Kyocera", "model": "M5526cdw", "meters": ["bw"]},
        headers=api,
    ).get_json()
    body = {**CONTRACT, "customer_id": customer["id"], "devices": [{"device_id": device["id"], "counters": {"bw": 10}}]}
    tables = ("rentals_contract", "rentals_allowance", "rentals_installation")
    before = {table: _count(app, table) for table in tables}

    flushes = []

    def outage_after_first_flush(_session, _context):
        flushes.append(1)
        if len(flushes) == 1:
            postgres_server.stop()

    sa.event.listen(db.session, "after_flush", outage_after_first_flush)
    try:
        cut = client.post("/api/v1/contracts", json=body, headers=api)
    finally:
        sa.event.remove(db.session, "after_flush", outage_after_first_flush)
        postgres_server.start()

    assert cut.status_code == 503, cut.get_data(as_text=True)
    assert cut.mimetype == "application/problem+json"
    assert {table: _count(app, table) for table in tables} == before

    again = client.post("/api/v1/contracts", json=body, headers=api)
    assert again.status_code == 201, again.get_data(as_text=True)
    assert {table: _count(app, table) - before[table] for table in tables} == dict.fromkeys(tables, 1)
