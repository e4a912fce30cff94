"""Usage rollups: each transaction and refund added to its rollup rows in the same database transaction; rebuild.

DailyUsage holds a day's totals per (customer, user, cost center, device, function, paper size); MonthlyUsage the
same by month; CenterDailyUsage a day's totals per (customer, cost center, function). Reports read the fewest rows
that answer them (reports._Scope): the narrow day rows when they group and filter by cost center, function and
time only, whole months from MonthlyUsage, the other days from DailyUsage.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from core import clock
from core.db import db
from modules.device_accounting.models import CenterDailyUsage, DailyUsage, MonthlyUsage, Refund, Transaction

KEY = ("customer_id", "day", "user_id", "cost_center_id", "device_id", "function", "paper_size")
MONTH_KEY = ("customer_id", "month", "user_id", "cost_center_id", "device_id", "function", "paper_size")
CENTER_KEY = ("customer_id", "day", "cost_center_id", "function")
SUMS = ("jobs", "sides_bw", "sides_color", "sheets", "cost")
_PG = postgresql.dialect()


@functools.cache
def upsert(model: type, keys: tuple[str, ...]) -> sa.TextClause:
    """`INSERT ... ON CONFLICT (keys) DO UPDATE SET sums = sums + new`, the same text on PostgreSQL and SQLite, made
    once per table: SQLAlchemy cannot cache the compiled form of its dialect inserts with ON CONFLICT, and a job
    would otherwise pay three compilations."""
    table = model.__table__
    names = [*keys, *SUMS]
    sums = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in SUMS)
    statement = sa.text(
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(':' + name for name in names)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}"
    )
    return statement.bindparams(*(sa.bindparam(name, type_=table.c[name].type) for name in names))


def _key(tx: Transaction) -> dict:
    return {
        "customer_id": tx.customer_id,
        "day": clock.local_date(tx.ended_at),
        "user_id": tx.user_id or 0,
        "cost_center_id": tx.cost_center_id or 0,
        "device_id": tx.device_id,
        "function": tx.function,
        "paper_size": tx.paper_size,
    }


def _add(key: dict, jobs: int, sides_bw: int, sides_color: int, sheets: int, cost: Decimal) -> None:
    """Add these figures to the rows of `key` (its day's, its month's, its cost center's day), creating them: one
    statement each, safe when two writers add at once (the database locks the row)."""
    figures = {"jobs": jobs, "sides_bw": sides_bw, "sides_color": sides_color, "sheets": sheets, "cost": cost}
    month = {**{name: key[name] for name in KEY if name != "day"}, "month": key["day"].replace(day=1)}
    center = {name: key[name] for name in CENTER_KEY}
    rows = ((DailyUsage, KEY, key), (MonthlyUsage, MONTH_KEY, month), (CenterDailyUsage, CENTER_KEY, center))
    for model, keys, values in rows:
        db.session.execute(upsert(model, keys), {**values, **figures})


@functools.cache
def _unnest_upsert(model: type, keys: tuple[str, ...]) -> sa.TextClause:
    """PostgreSQL: upsert for many rows in one statement, one array per column (the keys must be distinct)."""
    table = model.__table__
    names = [*keys, *SUMS]
    arrays = ", ".join(f"CAST(:{name} AS {table.c[name].type.compile(dialect=_PG)}[])" for name in names)
    sums = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in SUMS)
    return sa.text(
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}"
    )


def add_days(days: dict[tuple, list]) -> None:
    """Add many jobs at once: `days` maps a DailyUsage key (values in KEY's order, no None) to its figures [jobs,
    sides_bw, sides_color, sheets, cost]; those days, their months and their cost centers' days get one statement
    per table (PostgreSQL) or one executemany. Rows are written in key order, so two writers lock shared rows in
    the same order (no deadlock)."""
    months: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
    centers: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
    for (customer, day, user, center, device, function, size), sums in days.items():
        for target in (
            months[(customer, day.replace(day=1), user, center, device, function, size)],
            centers[(customer, day, center, function)],
        ):
            for position, value in enumerate(sums):
                target[position] += value
    postgres = db.session.get_bind().dialect.name == "postgresql"
    for model, keys, totals in (
        (DailyUsage, KEY, days),
        (MonthlyUsage, MONTH_KEY, months),
        (CenterDailyUsage, CENTER_KEY, centers),
    ):
        ordered = sorted(totals.items())
        if not ordered:
            continue
        if postgres:
            columns = [list(column) for column in zip(*(key + tuple(sums) for key, sums in ordered), strict=True)]
            db.session.execute(_unnest_upsert(model, keys), dict(zip((*keys, *SUMS), columns, strict=True)))
        else:
            params = [dict(zip((*keys, *SUMS), (*key, *sums), strict=True)) for key, sums in ordered]
            db.session.execute(upsert(model, keys), params)


def add_transaction(tx: Transaction) -> None:
    """Count a newly stored transaction in its rollup rows (the dealer's day of its end), in the same transaction."""
    db.session.flush()
    _add(_key(tx), 1, tx.sides_bw or 0, tx.sides_color or 0, tx.sheets or 0, Decimal(tx.cost or 0) - (tx.refunded or 0))


def add_refund(tx: Transaction, amount: Decimal) -> None:
    """Take a refund off the cost of the transaction's rollup rows; counts stay (the job was printed)."""
    db.session.flush()
    _add(_key(tx), 0, 0, 0, 0, -Decimal(amount))


def rebuild(customer_id: int | None = None, since: dt.date | None = None, until: dt.date | None = None) -> int:
    """Recompute the rollups from the raw transactions and refunds: of one customer (else all), of the dealer's days
    `since`..`until` inclusive (else all), with their cost centers' days and their months. Returns the number of
    daily rows written. Does not commit."""
    day_filter = []
    tx_filter = []
    if customer_id is not None:
        day_filter.append(DailyUsage.customer_id == customer_id)
        tx_filter.append(Transaction.customer_id == customer_id)
    if since is not None:
        day_filter.append(DailyUsage.day >= since)
        tx_filter.append(Transaction.ended_at >= clock.day_start(since))
    if until is not None:
        day_filter.append(DailyUsage.day <= until)
        tx_filter.append(Transaction.ended_at < clock.day_start(until + dt.timedelta(days=1)))
    db.session.execute(sa.delete(DailyUsage).where(*day_filter))
    if db.session.get_bind().dialect.name == "postgresql":
        written = _rebuild_sql(tx_filter)
    else:
        written = _rebuild_python(tx_filter)
    refresh_centers(customer_id, since, until)
    refresh_months(customer_id, since, until)
    return written


def refresh_centers(customer_id: int | None = None, since: dt.date | None = None, until: dt.date | None = None) -> None:
    """Recompute CenterDailyUsage from DailyUsage: of one customer (else all), of the days `since`..`until` (else
    all). Does not commit."""
    center_filter = []
    day_filter = []
    if customer_id is not None:
        center_filter.append(CenterDailyUsage.customer_id == customer_id)
        day_filter.append(DailyUsage.customer_id == customer_id)
    if since is not None:
        center_filter.append(CenterDailyUsage.day >= since)
        day_filter.append(DailyUsage.day >= since)
    if until is not None:
        center_filter.append(CenterDailyUsage.day <= until)
        day_filter.append(DailyUsage.day <= until)
    db.session.execute(sa.delete(CenterDailyUsage).where(*center_filter))
    keys = [getattr(DailyUsage, name) for name in CENTER_KEY]
    select = (
        sa.select(*keys, *(sa.func.sum(getattr(DailyUsage, name)) for name in SUMS)).where(*day_filter).group_by(*keys)
    )
    db.session.execute(sa.insert(CenterDailyUsage).from_select([*CENTER_KEY, *SUMS], select))


def _month_start():
    """The first day of DailyUsage.day's month, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.date_trunc("month", DailyUsage.day), sa.Date)
    return sa.func.date(DailyUsage.day, "start of month")


def refresh_months(customer_id: int | None = None, since: dt.date | None = None, until: dt.date | None = None) -> None:
    """Recompute MonthlyUsage from DailyUsage: of one customer (else all), of the months that hold a day of
    `since`..`until` (else all). Does not commit."""
    month_filter = []
    day_filter = []
    if customer_id is not None:
        month_filter.append(MonthlyUsage.customer_id == customer_id)
        day_filter.append(DailyUsage.customer_id == customer_id)
    if since is not None:
        month_filter.append(MonthlyUsage.month >= since.replace(day=1))
        day_filter.append(DailyUsage.day >= since.replace(day=1))
    if until is not None:
        month_filter.append(MonthlyUsage.month <= until)
        day_filter.append(DailyUsage.day < (until.replace(day=1) + dt.timedelta(days=32)).replace(day=1))
    db.session.execute(sa.delete(MonthlyUsage).where(*month_filter))
    month = _month_start()
    keys = [
        DailyUsage.customer_id,
        month,
        DailyUsage.user_id,
        DailyUsage.cost_center_id,
        DailyUsage.device_id,
        DailyUsage.function,
        DailyUsage.paper_size,
    ]
    select = (
        sa.select(*keys, *(sa.func.sum(getattr(DailyUsage, name)) for name in SUMS)).where(*day_filter).group_by(*keys)
    )
    db.session.execute(sa.insert(MonthlyUsage).from_select([*MONTH_KEY, *SUMS], select))


def anonymised(customer_id: int, before: dt.date) -> None:
    """After privacy moved the daily rows of the days before `before` to user 0: the months holding such days are
    recomputed (the one of `before`, and any older month still naming a user), so no month names them either."""
    first = before.replace(day=1)
    stale = set(
        db.session.scalars(
            sa.select(MonthlyUsage.month)
            .where(MonthlyUsage.customer_id == customer_id, MonthlyUsage.month < first, MonthlyUsage.user_id != 0)
            .distinct()
        )
    )
    if before > first:
        stale.add(first)
    for month in sorted(stale):
        refresh_months(customer_id, month, month)


def _refunded_subquery():
    return (
        sa.select(Refund.transaction_id, sa.func.sum(Refund.amount).label("amount"))
        .group_by(Refund.transaction_id)
        .subquery()
    )


def _rebuild_sql(tx_filter: list) -> int:
    """PostgreSQL: one INSERT ... SELECT ... GROUP BY, the day taken in the dealer's time zone by the server."""
    refunded = _refunded_subquery()
    day = sa.cast(sa.func.timezone(clock.timezone().key, Transaction.ended_at), sa.Date)
    keys = [
        Transaction.customer_id,
        day,
        sa.func.coalesce(Transaction.user_id, 0),
        sa.func.coalesce(Transaction.cost_center_id, 0),
        Transaction.device_id,
        Transaction.function,
        Transaction.paper_size,
    ]
    select = (
        sa.select(
            *keys,
            sa.func.count(),
            sa.func.sum(Transaction.sides_bw),
            sa.func.sum(Transaction.sides_color),
            sa.func.sum(Transaction.sheets),
            sa.func.sum(Transaction.cost - sa.func.coalesce(refunded.c.amount, 0)),
        )
        .select_from(Transaction)
        .outerjoin(refunded, refunded.c.transaction_id == Transaction.id)
        .where(*tx_filter)
        .group_by(*keys)
    )
    result = db.session.execute(sa.insert(DailyUsage).from_select([*KEY, *SUMS], select))
    return result.rowcount


def _rebuild_python(tx_filter: list) -> int:
    """Other databases (SQLite): the dealer's day worked out in Python, rows summed in memory, written in batches."""
    refunded = _refunded_subquery()
    rows = db.session.execute(
        sa.select(
            Transaction.customer_id,
            Transaction.ended_at,
            Transaction.user_id,
            Transaction.cost_center_id,
            Transaction.device_id,
            Transaction.function,
            Transaction.paper_size,
            Transaction.sides_bw,
            Transaction.sides_color,
            Transaction.sheets,
            Transaction.cost,
            refunded.c.amount,
        )
        .outerjoin(refunded, refunded.c.transaction_id == Transaction.id)
        .where(*tx_filter)
        .execution_options(yield_per=5000)
    )
    zone = clock.timezone()
    totals: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal("0")])
    for customer, ended, user, center, device, function, size, bw, color, sheets, cost, refund in rows:
        day = clock.as_utc(ended).astimezone(zone).date()
        entry = totals[(customer, day, user or 0, center or 0, device, function, size)]
        entry[0] += 1
        entry[1] += bw
        entry[2] += color
        entry[3] += sheets
        entry[4] += Decimal(cost) - Decimal(refund or 0)
    values = [dict(zip(KEY, key, strict=True)) | dict(zip(SUMS, sums, strict=True)) for key, sums in totals.items()]
    for start in range(0, len(values), 1000):
        db.session.execute(sa.insert(DailyUsage), values[start : start + 1000])
    return len(values)
