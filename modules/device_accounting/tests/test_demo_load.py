"""The demo of device accounting: two customers with cost-center trees, print users with cards and PINs, quotas and
price lists, three months of working-day jobs ending today whose balances and report figures add up, and a print
server with held jobs waiting (one about to expire)."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from decimal import Decimal

import sqlalchemy as sa
import time_machine

from core import clock
from core.db import db
from core.models import Partner, User
from modules.device_accounting import held_jobs, quotas, reports
from modules.device_accounting.models import (
    Balance,
    Card,
    CostCenter,
    DailyUsage,
    HeldDocument,
    HeldJob,
    PriceList,
    PrintDelegate,
    PrintServer,
    PrintUser,
    Quota,
    Refund,
    Transaction,
)
from tests.demo_snapshot import load_demo

CUSTOMERS = ("Studio Legale Bianchi", "Farmacia San Marco Srl")


def _load(app) -> float:
    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    return time.monotonic() - started


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_demo_gives_two_customers_people_quotas_prices_and_three_months_of_jobs(app):
    load_demo(app)
    with app.app_context():
        ids = dict(db.session.execute(sa.select(Partner.name, Partner.id).where(Partner.name.in_(CUSTOMERS))).all())
        for name in CUSTOMERS:
            paths = {
                center.path
                for center in db.session.scalars(sa.select(CostCenter).where(CostCenter.customer_id == ids[name]))
            }
            assert {"Amministrazione / Contabilità", "Direzione"} <= paths
            assert 8 <= _count(PrintUser, PrintUser.customer_id == ids[name]) <= 15
        numbers = db.session.scalars(sa.select(Card.number)).all()
        assert any(number.startswith("0") for number in numbers)
        assert _count(PrintUser, PrintUser.pin_digest.is_not(None)) >= 10
        modes = Counter(db.session.scalars(sa.select(Quota.mode)))
        assert modes["reset"] and modes["rollover"]
        shared = db.session.scalars(sa.select(Quota).where(Quota.cost_center_id.is_not(None))).all()
        assert shared and all(quota.cost_center.shared for quota in shared)
        owners = set(db.session.scalars(sa.select(PriceList.customer_id)))
        assert None in owners and ids["Farmacia San Marco Srl"] in owners

        # A portal user finds their own jobs: a print user with their email.
        portal = db.session.scalar(sa.select(User).where(User.role == "customer_admin"))
        assert _count(PrintUser, PrintUser.email == portal.email) == 1


def test_demo_jobs_are_three_months_of_working_hours_mostly_print_and_copy(app):
    load_demo(app)
    with app.app_context():
        jobs = db.session.scalars(sa.select(Transaction)).all()
        assert 1500 <= len(jobs) <= 3000
        zone = clock.timezone()
        moments = [clock.as_utc(job.ended_at).astimezone(zone) for job in jobs]
        days = {moment.date() for moment in moments}
        today = clock.today()
        assert min(days) <= today - dt.timedelta(days=85)
        assert max(days) >= today - dt.timedelta(days=4)  # the last working day
        assert all(moment.weekday() < 5 and 8 <= moment.hour <= 18 for moment in moments)
        assert all(moment <= clock.now() for moment in moments)
        functions = Counter(job.function for job in jobs)
        assert (functions["print"] + functions["copy"]) / len(jobs) > 0.7
        assert functions["scan"] and functions["email"]
        colour = sum(1 for job in jobs if job.sides_color)
        assert 0.05 < colour / len(jobs) < 0.4
        sizes = Counter(job.paper_size for job in jobs)
        assert sizes["A4"] / len(jobs) > 0.85
        # The law firm hides document names: none stored; the pharmacy keeps them.
        bianchi = db.session.scalar(sa.select(Partner.id).where(Partner.name == CUSTOMERS[0]))
        assert not any(job.document_name for job in jobs if job.customer_id == bianchi)
        assert any(job.document_name for job in jobs if job.customer_id != bianchi)


def test_demo_balances_equal_their_ledger_and_reports_their_jobs(app):
    load_demo(app)
    with app.app_context():
        for balance in db.session.scalars(sa.select(Balance)):
            assert quotas.recompute(balance) == balance.balance
        assert _count(Refund) >= 1
        over = _count(Balance, Balance.balance < 0)
        assert over >= 1  # the dashboard's "users over quota" has someone to show
        today = clock.today()
        for name in CUSTOMERS:
            customer_id = db.session.scalar(sa.select(Partner.id).where(Partner.name == name))
            jobs, cost, refunded = db.session.execute(
                sa.select(sa.func.count(), sa.func.sum(Transaction.cost), sa.func.sum(Transaction.refunded)).where(
                    Transaction.customer_id == customer_id
                )
            ).one()
            rolled = db.session.execute(
                sa.select(sa.func.sum(DailyUsage.jobs), sa.func.sum(DailyUsage.cost)).where(
                    DailyUsage.customer_id == customer_id
                )
            ).one()
            assert rolled == (jobs, Decimal(cost) - Decimal(refunded))
            summary = reports.summary(customer_id, today - dt.timedelta(days=100), today)
            assert summary["totals"]["jobs"] == jobs
            assert len([month for month in summary["trend"] if month["jobs"]]) >= 3


def test_demo_has_a_print_server_and_held_jobs_waiting_one_about_to_expire(app):
    _load(app)
    with app.app_context():
        server = db.session.scalar(sa.select(PrintServer))
        assert server.customer.name == "Studio Legale Bianchi"
        assert [mapped.cups_user for mapped in server.users] and [mapped.queue for mapped in server.printers]
        jobs = db.session.scalars(sa.select(HeldJob).where(HeldJob.state == "held")).all()
        assert len(jobs) >= 3
        assert all(job.title is None for job in jobs)  # the studio hides document names
        now = clock.now()
        left = sorted(clock.as_utc(job.expires_at) - now for job in jobs)
        assert dt.timedelta(0) < left[0] < dt.timedelta(hours=1) < left[-1]
        # Each waiting job's document is stored, sealed, and is the PDF it says.
        for job in jobs:
            assert db.session.get(HeldDocument, job.id) is not None
            document = held_jobs.document_of(job)
            assert document.startswith(b"%PDF") and held_jobs.count_pdf_pages(document) == job.pages
        # The demo portal user (Anna Bianchi) has held jobs, and a colleague who may release them.
        anna = db.session.scalar(sa.select(PrintUser).where(PrintUser.username == "abianchi"))
        assert any(job.user_id == anna.id for job in jobs)
        assert _count(PrintDelegate, PrintDelegate.owner_id == anna.id) == 1


def test_demo_loads_in_seconds_and_a_second_load_adds_nothing(app):
    loaded_at = dt.datetime.now(dt.UTC)
    _load(app)  # core and every module, device accounting after rentals (its devices and customers come first)
    with app.app_context():
        models = (Transaction, PrintUser, Card, Quota, Refund, PriceList, PrintServer, HeldJob, PrintDelegate)
        counts = {model: _count(model) for model in models}
        ledger = db.session.scalars(sa.select(Balance.balance).order_by(Balance.id)).all()
        loaders = dict(app.extensions["copydesk"].demo_loaders)
        order = list(loaders)
        assert order.index("rentals") < order.index("device_accounting")
        started = time.monotonic()
        # Loaded again as of the first load's moment: a job that ended in between is new activity, not a duplicate.
        with time_machine.travel(loaded_at, tick=False):
            loaders["device_accounting"]()
        again = time.monotonic() - started
        assert {model: _count(model) for model in counts} == counts
        assert db.session.scalars(sa.select(Balance.balance).order_by(Balance.id)).all() == ledger
    assert again < 5


def test_demo_of_device_accounting_alone_takes_a_few_seconds(app):
    with app.app_context():
        from core.demo import load_core_demo

        load_core_demo()
        loaders = dict(app.extensions["copydesk"].demo_loaders)
        loaders["rentals"]()
        started = time.monotonic()
        loaders["device_accounting"]()
        took = time.monotonic() - started
        assert _count(Transaction) >= 1500
    assert took < 20  # about 3 s on SQLite, 6 s on PostgreSQL on a busy test machine
