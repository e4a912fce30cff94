"""Billing runs under pressure: two at once, through a real RQ worker, any sequence of runs and cancels; review."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wipe_rows
from core.db import db
from core.models import JobRecord
from core.settings import set_setting
from core.validation import ValidationError
from modules.invoicing import runs, services
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine
from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form
from tests.jobs_support import work_burst


def standing_refs() -> Counter:
    """(source, source_ref) of every line still billed: on a non-cancelled invoice and not reversed by a posted note."""
    reversed_ids = (
        sa.select(InvoiceLine.reversed_line_id)
        .join(Invoice)
        .where(Invoice.type == "credit_note", Invoice.state == "posted", InvoiceLine.reversed_line_id.is_not(None))
    )
    rows = db.session.execute(
        sa.select(InvoiceLine.source, InvoiceLine.source_ref)
        .join(Invoice)
        .where(Invoice.type == "invoice", Invoice.state != "cancelled", InvoiceLine.id.not_in(reversed_ids))
    ).all()
    return Counter(tuple(row) for row in rows)


def invoice_contents() -> list[tuple]:
    invoices = db.session.scalars(sa.select(Invoice).where(Invoice.state != "cancelled")).all()
    return sorted(
        (inv.customer_id, inv.contract_id, str(inv.total), tuple((ln.source_ref, str(ln.amount)) for ln in inv.lines))
        for inv in invoices
    )


def test_two_runs_at_once_bill_every_line_exactly_once(app, db_session):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("SQLite serialises writers: concurrency is proven on PostgreSQL")
    client = app.test_client()
    staff = bearer("dealer_admin")
    customers = [billing_customer(f"Cliente {n}") for n in range(6)]
    for number, customer in enumerate(customers):
        new_contract(client, staff, customer.id, f"S{number}")
        for line in range(20):
            usage_line(customer.id, f"c{customer.id}:{line}", line + 1, "0.5")
    run_ids = [runs.create_run(dt.date(2026, 2, 5)).id for _ in range(2)]
    db.session.commit()
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def launch(run_id: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                runs.launch_run(run_id)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=launch, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    db.session.expire_all()
    assert failures == []
    counts = standing_refs()
    assert len(counts) == 6 * (20 + 2) and set(counts.values()) == {1}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledRef)) == len(counts)
    assert all(run.status == "done" for run in db.session.scalars(sa.select(runs.BillingRun)))


def test_two_postings_at_once_take_consecutive_numbers(app, db_session):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("SQLite serialises writers: concurrency is proven on PostgreSQL")
    client = app.test_client()
    staff = bearer("dealer_admin")
    for number in range(2):
        new_contract(client, staff, billing_customer(f"Cliente {number}").id, f"S{number}")
    invoice_ids = start_run(client, staff, "2026-01-05")["invoice_ids"] * 2  # each draft posted by two people
    barrier = threading.Barrier(len(invoice_ids))
    outcomes: list[str] = []

    def post(invoice_id: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(services.post(db.session.get(Invoice, invoice_id), dt.date(2026, 1, 20)).number)
                db.session.commit()
            except ValidationError:
                db.session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=post, args=(invoice_id,)) for invoice_id in invoice_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["1/2026", "2/2026", "refused", "refused"]


def test_run_through_a_real_rq_worker_gives_the_same_invoices_as_inline(app, redis_url, monkeypatch):
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        set_setting("invoicing.run_chunk_size", 2)
        db.session.commit()
        for number in range(3):
            customer = billing_customer(f"Cliente {number}")
            contract = new_contract(client, staff, customer.id, f"R{number}")
            usage_line(customer.id, f"u{number}", 100 * (number + 1), "0.012", contract_id=contract["id"])
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)

    queued = client.post("/api/v1/billing-runs", json={"as_of": "2026-02-05"}, headers=staff).get_json()
    work_burst(app)
    through_rq = client.get(f"/api/v1/billing-runs/{queued['id']}", headers=staff).get_json()
    with app.app_context():
        rq_contents = invoice_contents()
        chunk_jobs = db.session.scalars(sa.select(JobRecord.id).where(JobRecord.id.like("billing-run:%"))).all()
        for invoice in db.session.scalars(sa.select(Invoice)):
            services.cancel(invoice)
        db.session.commit()
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    inline = start_run(client, staff, "2026-02-05")

    assert queued["status"] == "queued"
    assert through_rq["status"] == "done" and through_rq["progress"] == {"done": 3, "total": 3}
    assert sorted(chunk_jobs) == [f"billing-run:{queued['id']}:0", f"billing-run:{queued['id']}:1"]
    assert len(inline["invoice_ids"]) == 3
    with app.app_context():
        assert invoice_contents() == rq_contents


REFS = [(f"r{n}", dt.date(2026, 1, 1) + dt.timedelta(days=10 * n)) for n in range(8)]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(min_value=0, max_value=90)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("post"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("credit"), st.integers(min_value=0, max_value=20)),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_no_reference_is_ever_billed_twice_whatever_runs_and_cancels_happen(app, steps):
    wipe_rows(app)
    fake_usage.reset()
    with app.app_context():
        customers = [billing_customer("Alfa"), billing_customer("Beta")]
        for customer in customers:
            for ref, available in REFS:
                usage_line(customer.id, f"{customer.id}:{ref}", 3, "1.25", available_from=available)
        for action, value in steps:
            invoices = db.session.scalars(sa.select(Invoice).order_by(Invoice.id)).all()
            target = invoices[value % len(invoices)] if invoices else None
            try:
                if action == "run":
                    run = runs.create_run(dt.date(2026, 1, 1) + dt.timedelta(days=value))
                    db.session.commit()
                    runs.launch_run(run.id)
                elif target is not None and action == "cancel":
                    services.cancel(target)
                elif target is not None and action == "post":
                    services.post(target, dt.date(2026, 4, 1))
                elif target is not None and action == "credit":
                    services.post(services.create_credit_note(target), dt.date(2026, 4, 1))
                db.session.commit()
            except ValidationError:
                db.session.rollback()
            db.session.expire_all()
            counts = standing_refs()
            assert all(count == 1 for count in counts.values())
            assert db.session.scalar(
                sa.select(sa.func.count()).select_from(BilledRef).where(BilledRef.source == "fake_usage")
            ) == len(counts)
        final = runs.create_run(dt.date(2026, 12, 31))
        db.session.commit()
        runs.launch_run(final.id)
        db.session.expire_all()
        assert standing_refs() == Counter({("fake_usage", f"{c.id}:{ref}"): 1 for c in customers for ref, _d in REFS})


def test_review_flags_a_total_that_changed_more_than_the_threshold_and_posts_all(app):
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        steady, jumpy = billing_customer("Costante"), billing_customer("Variabile")
        new_contract(client, staff, steady.id, "V1")
        jumpy_contract = new_contract(client, staff, jumpy.id, "V2")
        for invoice_id in start_run(client, staff, "2026-01-05")["invoice_ids"]:
            client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-01-06"}, headers=staff)
        usage_line(jumpy.id, "big", 1000, "0.02", contract_id=jumpy_contract["id"], available_from=dt.date(2026, 2, 1))
        run = start_run(client, staff, "2026-02-05")
        make_user("office@rossi.example", "back_office")
    office = app.test_client()
    login(office, "office@rossi.example")

    page = office.get(f"/admin/invoicing_runs_admin/{run['id']}").get_data(as_text=True)
    posted = post_form(
        office,
        f"/admin/invoicing_runs_admin/{run['id']}/post",
        {"all": "1", "confirm": "1"},
        form_url=f"/admin/invoicing_runs_admin/{run['id']}",
        follow_redirects=True,
    )

    assert 'http-equiv="refresh"' not in page and "100%" in page
    assert page.count('data-flagged="1"') == 1
    assert "40.0%" in page  # 50.00 -> 70.00
    assert posted.status_code == 200 and "3/2026" in posted.get_data(as_text=True)
    with app.app_context():
        states = db.session.scalars(sa.select(Invoice.state).where(Invoice.billing_run_id == run["id"])).all()
        assert states == ["posted", "posted"]


def test_running_run_page_refreshes_itself_and_customers_cannot_open_it(app):
    with app.app_context():
        run = runs.create_run(dt.date(2026, 1, 5))
        run.total = 4
        db.session.commit()
        run_id = run.id
        make_user("office@rossi.example", "back_office")
        make_user("anna@alfa.example", "customer_admin", customer_id=billing_customer("Alfa").id)
    office, customer = app.test_client(), app.test_client()
    login(office, "office@rossi.example")
    login(customer, "anna@alfa.example", url="/portal/login")

    page = office.get(f"/admin/invoicing_runs_admin/{run_id}").get_data(as_text=True)

    assert 'http-equiv="refresh"' in page and "0 of 4" in page
    assert customer.get(f"/admin/invoicing_runs_admin/{run_id}").status_code == 403


def test_run_started_from_the_back_office_lands_on_its_page(app):
    with app.app_context():
        add_company()
        customer = billing_customer("Alfa")
        usage_line(customer.id, "x", 2, "3.00")
        make_user("office@rossi.example", "back_office")
    office = app.test_client()
    login(office, "office@rossi.example")

    response = post_form(
        office, "/admin/invoicing_runs_admin/start", {"as_of": "2026-01-05"}, form_url="/admin/invoicing_runs_admin/"
    )
    bad = post_form(
        office, "/admin/invoicing_runs_admin/start", {"as_of": "soon"}, form_url="/admin/invoicing_runs_admin/"
    )
    page = office.get(response.headers["Location"]).get_data(as_text=True)

    assert response.status_code == 302 and "7.32" in page  # 6.00 + 22% VAT
    assert bad.status_code == 302 and bad.headers["Location"].endswith("/admin/invoicing_runs_admin/")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(runs.BillingRun)) == 1
        assert db.session.scalar(sa.select(Invoice.total)) == Decimal("7.32")
