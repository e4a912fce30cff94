"""A run queued on Redis with no worker to take it says so, and how to start one."""

from __future__ import annotations

from core import jobs
from modules.invoicing.tests.support import add_company, billing_customer, new_contract
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form


def test_run_queued_with_no_worker_says_no_worker_is_taking_jobs_and_how_to_start_one(app, redis_url, monkeypatch):
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        new_contract(client, staff, billing_customer("Alfa").id, "W1")
        make_user("office@rossi.example", "back_office")
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    office = app.test_client()
    login(office, "office@rossi.example")

    started = post_form(
        office, "/admin/invoicing_runs_admin/start", {"as_of": "2026-01-05"}, form_url="/admin/invoicing_runs_admin/"
    )
    idle = office.get(started.headers["Location"]).get_data(as_text=True)
    worker = jobs.build_worker(app)
    worker.register_birth()
    try:
        waiting = office.get(started.headers["Location"]).get_data(as_text=True)
    finally:
        worker.register_death()

    assert "0 of 1" in idle
    assert "No worker is taking jobs" in idle and "make worker" in idle
    assert "No worker is taking jobs" not in waiting


def test_health_check_counts_the_workers_taking_jobs(app, redis_url, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    client = app.test_client()

    none = client.get("/healthz").get_json()
    worker = jobs.build_worker(app)
    worker.register_birth()
    try:
        one = client.get("/healthz").get_json()
    finally:
        worker.register_death()

    assert (none["workers"], one["workers"]) == (0, 1)
