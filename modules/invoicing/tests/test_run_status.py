"""A billing run's status follows its chunks: a chunk that fails and succeeds on retry leaves the run done."""

from __future__ import annotations

import pytest

from core import jobs, signals
from core.db import db
from core.models import JobRecord
from core.settings import set_setting
from modules.invoicing.models import BillingRun, Invoice
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from tests.api_support import bearer
from tests.jobs_support import work_burst


@pytest.fixture
def hiccup(tmp_path):
    """The fake source's bookkeeping of billed lines fails once for each ref in the returned set, then works.

    Each failure leaves a file behind, so a forked RQ work horse's retry sees it too.
    """
    refs: set[str] = set()

    def record(sender, source, lines, **_kwargs):
        failing = {ref for ref, _details in lines if ref in refs and not (tmp_path / ref).exists()}
        for ref in failing:
            (tmp_path / ref).touch()
        if failing:
            raise RuntimeError(f"bookkeeping of {sorted(failing)} failed")

    signals.lines_billed.connect(record)
    yield refs
    signals.lines_billed.disconnect(record)


def customers_with_lines(client, staff, count: int) -> list[int]:
    ids = []
    for number in range(count):
        customer = billing_customer(f"Cliente {number}")
        contract = new_contract(client, staff, customer.id, f"RS{number}")
        usage_line(customer.id, f"rs{number}", 100, "0.012", contract_id=contract["id"])
        ids.append(customer.id)
    return ids


def run_state(run_id: int) -> tuple[str, int, int]:
    db.session.expire_all()
    run = db.session.get(BillingRun, run_id)
    return run.status, run.done, run.total


def billed_customers(run_id: int) -> set[int]:
    return set(db.session.scalars(db.select(Invoice.customer_id).where(Invoice.billing_run_id == run_id)))


def test_chunk_that_fails_then_succeeds_on_retry_leaves_the_run_done(app, db_session, hiccup):
    add_company()
    set_setting("invoicing.run_chunk_size", 1)
    db.session.commit()
    client, staff = app.test_client(), bearer("dealer_admin")
    customers = customers_with_lines(client, staff, 2)
    hiccup.add("rs0")

    run_id = start_run(client, staff, "2026-02-05")["id"]
    assert run_state(run_id) == ("failed", 1, 2)
    assert jobs.job_status(f"billing-run:{run_id}:0") == "failed"

    assert jobs.retry_job(f"billing-run:{run_id}:0") == "done"
    assert run_state(run_id) == ("done", 2, 2)
    assert billed_customers(run_id) == set(customers)


def test_run_stays_failed_until_every_failed_chunk_has_succeeded(app, db_session, hiccup):
    add_company()
    set_setting("invoicing.run_chunk_size", 1)
    db.session.commit()
    client, staff = app.test_client(), bearer("dealer_admin")
    customers = customers_with_lines(client, staff, 3)
    hiccup.update({"rs0", "rs2"})

    run_id = start_run(client, staff, "2026-02-05")["id"]
    assert run_state(run_id) == ("failed", 1, 3)

    jobs.retry_job(f"billing-run:{run_id}:2")
    assert run_state(run_id) == ("failed", 2, 3)
    assert billed_customers(run_id) == {customers[1], customers[2]}

    jobs.retry_job(f"billing-run:{run_id}:0")
    assert run_state(run_id) == ("done", 3, 3)
    assert billed_customers(run_id) == set(customers)


def test_chunk_retried_by_a_real_worker_after_failing_leaves_the_run_done(
    app, db_session, hiccup, redis_url, monkeypatch
):
    add_company()
    client, staff = app.test_client(), bearer("dealer_admin")
    customers = customers_with_lines(client, staff, 2)
    hiccup.add("rs1")
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "JOB_RETRY_INTERVALS", [0])  # RQ puts the retry straight back in the queue

    response = client.post("/api/v1/billing-runs", json={"as_of": "2026-02-05"}, headers=staff)
    run_id = response.get_json()["id"]
    work_burst(app)

    record = db.session.get(JobRecord, f"billing-run:{run_id}:0")
    assert (record.status, record.attempts) == ("done", 2)
    assert run_state(run_id) == ("done", 2, 2)
    assert billed_customers(run_id) == set(customers)
