"""Daily rollups: after random jobs and refunds they equal a GROUP BY over the raw rows; a rebuild gives them back."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from modules.device_accounting import rollups
from modules.device_accounting.models import (
    FUNCTIONS,
    PAPER_SIZES,
    CenterDailyUsage,
    DailyUsage,
    MonthlyUsage,
    Refund,
    Transaction,
)
from modules.device_accounting.tests import reports_support as s


def _raw_group_by() -> dict[tuple, tuple]:
    """The rollups as they should be: every raw transaction grouped by its key, less its refunds."""
    refunds = dict(
        db.session.execute(
            sa.select(Refund.transaction_id, sa.func.sum(Refund.amount)).group_by(Refund.transaction_id)
        ).all()
    )
    totals: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal("0")])
    for tx in db.session.scalars(sa.select(Transaction)):
        key = (
            tx.customer_id,
            clock.local_date(tx.ended_at),
            tx.user_id or 0,
            tx.cost_center_id or 0,
            tx.device_id,
            tx.function,
            tx.paper_size,
        )
        entry = totals[key]
        entry[0] += 1
        entry[1] += tx.sides_bw
        entry[2] += tx.sides_color
        entry[3] += tx.sheets
        entry[4] += tx.cost - Decimal(refunds.get(tx.id, 0))
    return {key: tuple(value) for key, value in totals.items()}


def _rollups() -> dict[tuple, tuple]:
    rows = db.session.scalars(sa.select(DailyUsage)).all()
    return {
        tuple(getattr(row, name) for name in rollups.KEY): (
            row.jobs,
            row.sides_bw,
            row.sides_color,
            row.sheets,
            row.cost,
        )
        for row in rows
    }


def _by_month(daily: dict[tuple, tuple]) -> dict[tuple, tuple]:
    months: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal("0")])
    for (customer, day, *rest), figures in daily.items():
        entry = months[(customer, day.replace(day=1), *rest)]
        for position, value in enumerate(figures):
            entry[position] += value
    return {key: tuple(value) for key, value in months.items()}


def _by_center(daily: dict[tuple, tuple]) -> dict[tuple, tuple]:
    centers: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal("0")])
    for (customer, day, _user, center, _device, function, _size), figures in daily.items():
        entry = centers[(customer, day, center, function)]
        for position, value in enumerate(figures):
            entry[position] += value
    return {key: tuple(value) for key, value in centers.items()}


def _centers() -> dict[tuple, tuple]:
    return {
        tuple(getattr(row, name) for name in rollups.CENTER_KEY): (
            row.jobs,
            row.sides_bw,
            row.sides_color,
            row.sheets,
            row.cost,
        )
        for row in db.session.scalars(sa.select(CenterDailyUsage))
    }


def _monthly() -> dict[tuple, tuple]:
    return {
        tuple(getattr(row, name) for name in rollups.MONTH_KEY): (
            row.jobs,
            row.sides_bw,
            row.sides_color,
            row.sheets,
            row.cost,
        )
        for row in db.session.scalars(sa.select(MonthlyUsage))
    }


def _random_jobs(rng: random.Random, count: int) -> None:
    customers = [s.customer("Studio Bianchi"), s.customer("Ferri Logistica")]
    devices = {c.id: [s.device(f"RB{c.id}{n}", c.id) for n in range(2)] for c in customers}
    centers = {c.id: [s.cost_center(c.id, f"Reparto {n}") for n in range(2)] for c in customers}
    users = {c.id: [s.print_user(c.id, f"user{n}", f"Utente {n}") for n in range(3)] for c in customers}
    start = dt.datetime(2026, 3, 27, 20, tzinfo=dt.UTC)  # across the change to summer time in Rome (29 March)
    jobs = []
    for _ in range(count):
        customer = rng.choice(customers).id
        bw, color = rng.randint(0, 40), rng.choice([0, 0, rng.randint(1, 20)])
        tx = s.job(
            customer,
            rng.choice(devices[customer]).id,
            start + dt.timedelta(minutes=rng.randint(0, 6 * 24 * 60)),
            user_id=rng.choice([None, *(u.id for u in users[customer])]),
            cost_center_id=rng.choice([None, *(c.id for c in centers[customer])]),
            function=rng.choice(FUNCTIONS),
            paper_size=rng.choice(PAPER_SIZES),
            sides_bw=bw,
            sides_color=color,
            cost=Decimal(bw) * Decimal("0.0125") + Decimal(color) * Decimal("0.0831"),
        )
        jobs.append(tx)
    for tx in rng.sample(jobs, count // 5):
        if tx.cost > 0:
            s.refund(tx, (tx.cost * Decimal(rng.randint(1, 100)) / 100).quantize(Decimal("0.0001")))
        if tx.cost - tx.refunded > 0 and rng.random() < 0.3:
            s.refund(tx, tx.cost - tx.refunded)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_group_by_over_raw_rows_after_random_jobs_and_refunds(db_session, seed):
    _random_jobs(random.Random(seed), 120)
    db.session.commit()

    expected = _raw_group_by()
    assert _rollups() == expected
    assert _monthly() == _by_month(expected)
    assert _centers() == _by_center(expected)
    assert sum(v[0] for v in expected.values()) == 120

    rollups.rebuild()
    db.session.commit()
    assert _rollups() == expected
    assert _monthly() == _by_month(expected)
    assert _centers() == _by_center(expected)


def test_rebuild_of_one_customer_and_some_days_leaves_the_rest(db_session):
    _random_jobs(random.Random(7), 80)
    db.session.commit()
    expected = _raw_group_by()
    customer_id = next(iter(expected))[0]
    # Damage every row, then rebuild one customer's days 28-29 March: only those come back right.
    db.session.execute(sa.update(DailyUsage).values(jobs=DailyUsage.jobs + 1000))
    rollups.rebuild(customer_id, since=dt.date(2026, 3, 28), until=dt.date(2026, 3, 29))
    got = _rollups()
    for key, value in expected.items():
        rebuilt = key[0] == customer_id and dt.date(2026, 3, 28) <= key[1] <= dt.date(2026, 3, 29)
        assert got[key] == (value if rebuilt else (value[0] + 1000, *value[1:]))
    # March of that customer is summed again from its (partly damaged) days; every other month is left alone.
    months = _monthly()
    refreshed = {k: v for k, v in _by_month(got).items() if k[0] == customer_id and k[1] == dt.date(2026, 3, 1)}
    assert {k: v for k, v in months.items() if k in refreshed} == refreshed
    others = {k: v for k, v in _by_month(expected).items() if k not in refreshed}
    assert {k: v for k, v in months.items() if k not in refreshed} == others


def test_the_day_is_the_dealers_and_a_late_job_counts_on_the_next_day(db_session):
    customer = s.customer()
    device = s.device("RX1", customer.id)
    # 23:30 UTC on 31 March is 01:30 on 1 April in Rome.
    s.job(customer.id, device.id, s.at("2026-03-31", 23, 30), sides_bw=3, cost="0.0300")
    s.job(customer.id, device.id, s.at("2026-03-31", 21, 30), sides_bw=2, cost="0.0200")
    db.session.commit()
    days = dict(db.session.execute(sa.select(DailyUsage.day, DailyUsage.sides_bw)).all())
    assert days == {dt.date(2026, 4, 1): 3, dt.date(2026, 3, 31): 2}


def test_a_rolled_back_job_leaves_no_rollup(db_session):
    customer = s.customer()
    device = s.device("RX2", customer.id)
    db.session.commit()
    s.job(customer.id, device.id, s.at("2026-04-02"), sides_bw=5, cost="0.0500")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DailyUsage)) == 0


def test_a_refund_lowers_the_cost_and_keeps_the_counts(db_session):
    customer = s.customer()
    device = s.device("RX3", customer.id)
    tx = s.job(customer.id, device.id, s.at("2026-04-02"), sides_color=10, cost="0.8310")
    s.job(customer.id, device.id, s.at("2026-04-02", 11), sides_color=1, cost="0.0831")
    s.refund(tx, "0.5000")
    db.session.commit()
    row = db.session.scalars(sa.select(DailyUsage)).one()
    assert (row.jobs, row.sides_color, row.cost) == (2, 11, Decimal("0.4141"))


def test_anonymised_jobs_leave_the_months_rollups_too(db_session):
    from modules.device_accounting import reports
    from modules.device_accounting.privacy import anonymise_customer

    customer = s.customer()
    device = s.device("RX4", customer.id)
    user = s.print_user(customer.id, "arossi", "Anna Rossi")
    for day in ("2026-02-10", "2026-03-05", "2026-03-20"):
        s.job(customer.id, device.id, s.at(day), user_id=user.id, sides_bw=2, cost="0.0200")
    db.session.commit()
    anonymise_customer(customer.id, dt.date(2026, 3, 10))
    db.session.commit()
    assert _monthly() == _by_month(_rollups())
    assert _centers() == _by_center(_rollups())
    february = reports.usage(customer.id, "user", dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert [(row["key"], row["jobs"]) for row in february] == [(None, 1)]
    march = reports.usage(customer.id, "user", dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert sorted((row["key"] or 0, row["jobs"]) for row in march) == [(0, 1), (user.id, 1)]
