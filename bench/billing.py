"""Benchmark of a billing run: a synthetic dealer (10,000 contracts, 20,000 devices, 12 months of readings).

    .venv/bin/python bench/billing.py --scale 0.02                      # a quick small run, both databases
    .venv/bin/python bench/billing.py --backend postgresql --workers 2  # full size, PostgreSQL, inline and 2 workers

One run as of 2026-02-05 bills 12 monthly fee periods and 11 ended periods of overage per contract. Printed, on the
same data: the data generation (not part of any figure), asking the sources alone (read only), the run inline (ask,
compute and store the drafts), the same run again (nothing new), the SQL lower bound and the ratios to it, PDF
renders per second, with --workers the same run again from scratch through that many `flask worker --burst`
processes on Redis (--redis-url, its queue `bench-billing`) and a worker's peak memory, and last the monthly run
(docs/performance.md). Databases: --pg-url and --redis-url are emptied (defaults: bench_billing, Redis db 8); SQLite
uses a temporary file.

The SQL lower bound is one statement (`lower_bound_sql`, on both databases) that reads every reading once and
computes each overage line's pages (window functions: `LAG` per contract line and meter, readings bucketed into the
period containing their dealer-local day minus the grace days, summed per period, bands split), best of 3 with every
row fetched. The bench then checks that the run stored exactly those overage lines (key, pages, and on PostgreSQL the
escalated unit price and amount) and fails with the differences otherwise; after the workers' run and the monthly
run too. A worker's peak memory is the high-water mark of resident memory (`VmHWM` in /proc/<pid>/status) of each
worker process and each job child it forks (RQ forks one per job), sampled 20 times a second: the largest of them.
Not `ru_maxrss`: a process started from the bench keeps, through exec, the high-water mark of the bench process it
was forked from, which holds the generated data (on Linux `ru_maxrss` is the largest the process ever was, before
exec included).

The monthly run is the month end of a dealer whose earlier months are all billed: after the run as of 2026-02-05
(everything up to January's overage and February's fee), one reading per device is added on 2026-03-03 and a run as
of 2026-03-05 bills one period per contract, March's fee and February's overage, reading the same year of history
and billed closings a real month end reads. The database is analyzed before it, as autovacuum (off on the bench's
server) would have done in the month between.

--profile runs the inline run and the monthly run under cProfile and prints where their time went: the share of each
layer (SQLAlchemy, the database driver and the wait on the server, Copydesk's own code, ...) and the heaviest of
Copydesk's functions. Its times are about twice the plain ones.

Readings are bulk-inserted rows, not `metering.readings.record_reading` calls (which validate and audit each one and
would take longer than the run itself): status `accepted`, `source` api, the same fingerprint `record_reading`
computes, one value per meter, counters rising from the installation value. No audit entries, no `reading_accepted`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import random
import subprocess
import sys
import tempfile
import threading
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import profiling  # noqa: E402 -- after the path is set
from core import create_app  # noqa: E402 -- after the path is set

AS_OF = dt.date(2026, 2, 5)
# The monthly run: a reading per device on March 3rd closes February, billed with March's fee as of March 5th.
MONTH_READING = dt.date(2026, 3, 3)
MONTH_AS_OF = dt.date(2026, 3, 5)
START = dt.date(2025, 3, 1)
CONTRACTS_PER_CUSTOMER = 5
DEVICES_PER_CONTRACT = 2
MODULES = ("rentals", "metering", "invoicing")
QUEUE = "bench-billing"
# One reading per month: the last day of March 2025 to January 2026 (closing the 11 ended periods), then February 3rd.
READING_DAYS = [dt.date(2025 + (month > 12), (month - 1) % 12 + 1, 1) - dt.timedelta(days=1) for month in range(4, 15)]
READING_DAYS.append(dt.date(2026, 2, 3))
BATCH = 20_000
RATES = {"bw": (25, 45), "color": (4, 9)}  # pages a day per device
PROFILE = {"on": False}  # --profile: the inline run and the monthly run under cProfile
FILLED_TABLES = (
    "core_partner",
    "rentals_device",
    "rentals_contract",
    "rentals_allowance",
    "rentals_price_band",
    "rentals_contract_line",
    "rentals_line_counter",
    "metering_reading",
    "metering_reading_value",
)


def add_reading(
    readings: list[dict], values: list[dict], reading_id: int, device_id: int, taken_at: dt.datetime, counters: dict
) -> None:
    """One accepted reading row and its counter values, as `record_reading` would store them."""
    from modules.metering.history import fingerprint

    readings.append(
        {
            "id": reading_id,
            "device_id": device_id,
            "taken_at": taken_at,
            "source": "api",
            "status": "accepted",
            "fingerprint": fingerprint(device_id, taken_at, counters),
            "created_at": taken_at,
        }
    )
    values.extend({"reading_id": reading_id, "meter": m, "value": v} for m, v in sorted(counters.items()))


def insert_readings(readings: list[dict], values: list[dict], last_id: int) -> None:
    """Bulk-insert the rows in batches; the ids were given, so PostgreSQL's sequence is moved past them."""
    from core.db import db
    from modules.metering.models import Reading, ReadingValue

    for table, rows in ((Reading, readings), (ReadingValue, values)):
        for start in range(0, len(rows), BATCH):
            db.session.execute(sa.insert(table), rows[start : start + BATCH])
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('metering_reading', 'id'), :n)"), {"n": last_id}
        )


def build_app(url: str, redis_url: str | None = None):
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench",
        "REDIS_URL": redis_url,
        "JOB_QUEUE": QUEUE,
        "MAIL_SERVER": None,
        "COPYDESK_MODULES": list(MODULES),
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    return create_app(config)


def fresh_database(backend: str, pg_url: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite'}"
    from conftest import empty_postgres

    empty_postgres(pg_url)
    return pg_url


def migrate(url: str):
    from core.migrate import upgrade_enabled
    from core.module_state import record_states, resolve_for_app

    app = build_app(url)
    with app.app_context():
        upgrade_enabled(app.extensions["copydesk"].resolution)
        record_states(resolve_for_app(app), app.config["COPYDESK_MODULES"])
    return build_app(url)


def populate(contracts: int) -> None:
    """Customers, devices, contracts with two devices and bw/colour allowances, in bulk inserts."""
    from core.db import db
    from core.models import Partner
    from modules.rentals import models as r

    session = db.session
    customers = max(1, contracts // CONTRACTS_PER_CUSTOMER)
    session.execute(
        sa.insert(Partner),
        [
            {
                "name": f"Cliente {n:05d}",
                "is_customer": True,
                "language": "it",
                "payment_terms_days": 30,
                "is_supplier": False,
                "active": True,
                "country": "IT",
                "payment_end_of_month": False,
            }
            for n in range(customers)
        ],
    )
    customer_ids = session.scalars(sa.select(Partner.id).order_by(Partner.id)).all()
    for code, labels in {"bw": ("B/W", "B/N", "B/N"), "color": ("Colour", "Colore", "Color")}.items():
        session.add(r.MeterType(code=code, label_en=labels[0], label_it=labels[1], label_es=labels[2]))
    maker = r.Manufacturer(name="Kyocera")
    session.add(maker)
    session.flush()
    model = r.DeviceModel(manufacturer_id=maker.id, name="TASKalfa 2554ci", color=True, paper_format="A4")
    session.add(model)
    session.flush()
    session.execute(sa.insert(r.model_meter), [{"model_id": model.id, "meter_code": m} for m in ("bw", "color")])
    devices = contracts * DEVICES_PER_CONTRACT
    session.execute(
        sa.insert(r.Device),
        [
            {
                "manufacturer_id": maker.id,
                "model_id": model.id,
                "serial": f"SN{n:07d}",
                "status": "installed",
                "customer_id": customer_ids[(n // DEVICES_PER_CONTRACT) % customers],
            }
            for n in range(devices)
        ],
    )
    device_ids = session.scalars(sa.select(r.Device.id).order_by(r.Device.id)).all()
    session.execute(
        sa.insert(r.Contract),
        [
            {
                "number": f"{n + 1}/2025",
                "customer_id": customer_ids[n % customers],
                "state": "active",
                "start_date": START,
                "period_months": 1,
                "fee": Decimal("50.00"),
                "fee_timing": "advance",
                "grace_days": 10,
                "escalation_percent": Decimal("3"),
                "estimate_missing": False,
                "vat_rate": Decimal("22"),
                "auto_renew": False,
                "renewal_months": 12,
                "notice_days": 90,
            }
            for n in range(contracts)
        ],
    )
    contract_ids = session.scalars(sa.select(r.Contract.id).order_by(r.Contract.id)).all()
    session.execute(
        sa.insert(r.Allowance),
        [
            {"contract_id": c, "meter": m, "included": inc, "pooled": False}
            for c in contract_ids
            for m, inc in (("bw", 1000), ("color", 200))
        ],
    )
    allowances = session.execute(sa.select(r.Allowance.id, r.Allowance.meter)).all()
    session.execute(
        sa.insert(r.PriceBand),
        [
            {"allowance_id": a, "position": 0, "up_to": None, "price": Decimal("0.012" if m == "bw" else "0.09")}
            for a, m in allowances
        ],
    )
    session.execute(
        sa.insert(r.ContractLine),
        [
            {"contract_id": contract_ids[n // DEVICES_PER_CONTRACT], "device_id": d, "start_date": START}
            for n, d in enumerate(device_ids)
        ],
    )
    line_ids = session.scalars(sa.select(r.ContractLine.id)).all()
    session.execute(
        sa.insert(r.LineCounter),
        [{"line_id": line, "meter": m, "start_value": 10_000} for line in line_ids for m in ("bw", "color")],
    )
    session.commit()
    add_readings(device_ids)


def add_readings(device_ids: list[int]) -> None:
    """12 accepted readings of `bw` and `color` per device, rising 25-45 and 4-9 pages a day (some months go over)."""
    from core.db import db

    rng = random.Random(2026)
    zone = ZoneInfo("Europe/Rome")
    readings, values = [], []
    reading_id = 0
    for device_id in device_ids:
        counters, previous = {"bw": 10_000, "color": 10_000}, START
        rates = {meter: rng.randint(*bounds) for meter, bounds in RATES.items()}
        for day in READING_DAYS:
            for meter, rate in rates.items():
                counters[meter] += max(0, rate * (day - previous).days + rng.randint(-60, 60))
            previous = day
            taken_at = dt.datetime.combine(day, dt.time(16), zone).astimezone(dt.UTC)
            reading_id += 1
            add_reading(readings, values, reading_id, device_id, taken_at, counters)
    insert_readings(readings, values, reading_id)
    db.session.commit()
    # Statistics of the filled tables only: a run on invoicing tables analyzed while empty (and autovacuum off, as
    # here) keeps planning their foreign-key checks as sequential scans, quadratic in the lines (docs/performance.md).
    tables = ", ".join(FILLED_TABLES)
    if db.session.get_bind().dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(f"VACUUM ANALYZE {tables}"))
    else:
        for table in FILLED_TABLES:
            db.session.execute(sa.text(f"ANALYZE {table}"))
        db.session.commit()


def ask_sources() -> None:
    """Each source's lines (and missing readings) for every customer, read only: the compute phase of a run, in
    chunks of the run's size, each prepared first as `runs.bill_chunk` does for a source that can read ahead."""
    from core.db import db
    from core.extension_points import BILLABLE_SOURCE, ChunkPreparer, MissingReadingsReporter, implementations
    from modules.invoicing import runs

    customers = runs.customer_ids()
    size = runs.DEFAULT_CHUNK_SIZE
    chunks = [customers[start : start + size] for start in range(0, len(customers), size)]
    for source in implementations(BILLABLE_SOURCE):
        started = time.perf_counter()
        lines = missing = 0
        for chunk in chunks:
            if isinstance(source, ChunkPreparer):
                source.prepare_chunk(chunk, AS_OF)
            for customer_id in chunk:
                lines += len(source.billable_lines(customer_id, AS_OF))
                if isinstance(source, MissingReadingsReporter):
                    missing += len(source.missing_readings(customer_id, AS_OF))
            if isinstance(source, ChunkPreparer):
                source.forget_chunk()
        print(f"  source {source.name}: {lines} lines, {missing} missing in {time.perf_counter() - started:.1f} s")
        db.session.rollback()


def analyze() -> None:
    """ANALYZE every table, as autovacuum would have after a large run."""
    from core.db import db

    db.session.commit()
    if db.session.get_bind().dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("ANALYZE"))
    else:
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()


def launch(run_id: int, what: str) -> None:
    """`runs.launch_run` (inline without Redis); under --profile, where its time went: per layer and by function."""
    from modules.invoicing import runs

    if not PROFILE["on"]:
        runs.launch_run(run_id)
        return
    profiler = cProfile.Profile()
    profiler.runcall(runs.launch_run, run_id)
    stats = pstats.Stats(profiler)
    shares = profiling.layer_shares(stats)
    print(f"  profile of {what} (times under the profiler, about twice the plain run's):")
    print("  " + ", ".join(f"{column} {shares[column]:.0%}" for column in profiling.COLUMNS if shares[column] >= 0.005))
    print("  " + profiling.legend())
    print("  heaviest of Copydesk's functions (cumulative):")
    for row in profiling.heaviest(stats, 20):
        print("  " + row)


def run_inline(backend: str) -> float:
    """The run as of AS_OF in this process, then the same run again; returns the first run's seconds."""
    from core.db import db
    from modules.invoicing import runs
    from modules.invoicing.models import Invoice, InvoiceLine

    started = time.perf_counter()
    run = runs.create_run(AS_OF)
    db.session.commit()
    launch(run.id, "the run inline")
    elapsed = time.perf_counter() - started
    db.session.expire_all()
    invoices = db.session.scalar(sa.select(sa.func.count()).select_from(Invoice))
    lines = db.session.scalar(sa.select(sa.func.count()).select_from(InvoiceLine))
    run = db.session.get(runs.BillingRun, run.id)
    print(
        f"[{backend}] billing run inline: {invoices} drafts, {lines} lines in {elapsed:.1f} s "
        f"({lines / elapsed:.0f} lines/s), status {run.status}, {run.done}/{run.total} customers"
    )
    # Autovacuum (off on the bench's server) analyzes the tables a run filled soon after; without statistics the
    # billed-refs lookup keeps a plan made while the table was empty (docs/performance.md, "Statistics").
    analyze()
    started = time.perf_counter()
    rerun = runs.create_run(AS_OF)
    db.session.commit()
    runs.launch_run(rerun.id)
    print(f"[{backend}] same run again (nothing new): {time.perf_counter() - started:.1f} s")
    return elapsed


# The SQL lower bound: one statement over every reading (docs/performance.md, issue #20).


def _part(dialect: str, unit: str, day: str) -> str:
    if dialect == "postgresql":
        return f"CAST(EXTRACT({unit} FROM {day}) AS INTEGER)"
    code = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d"}[unit]
    return f"CAST(strftime('{code}', {day}) AS INTEGER)"


def _months(dialect: str, day: str, start: str) -> str:
    """Whole `add_months` steps from `start` to `day` (the largest m with add_months(start, m) <= day), in SQL:
    the target month's day is clipped to its last day (billing-rules.md, "Periods")."""
    next_day = f"({day} + 1)" if dialect == "postgresql" else f"date({day}, '+1 day')"
    year, month, day_of = (lambda d, unit=unit: _part(dialect, unit, d) for unit in ("YEAR", "MONTH", "DAY"))
    return (
        f"(({year(day)} - {year(start)}) * 12 + {month(day)} - {month(start)}"
        f" - CASE WHEN {day_of(start)} > {day_of(day)} AND {day_of(next_day)} <> 1 THEN 1 ELSE 0 END)"
    )


def lower_bound_sql(dialect: str) -> str:
    """Every overage line's pages (and on PostgreSQL its escalated unit price and amount), in one statement.

    Readings (accepted or estimated, up to as_of, inside their device's stay) get the dealer-local day; `LAG` over
    the readings of each contract line (a device's stay on a contract) and meter gives each reading's pages since the
    previous one (the installation counter before the first); a reading belongs to the period that contains its day
    minus the contract's grace days (so the latest reading up to a period's end + grace closes it); the pages are
    summed per device and ended period (per contract when pooled), the included pages subtracted and the rest split
    over the price bands. Escalation years are (period index * period months) // 12.

    It implements what the bench's data uses, not every rule: no meter replacements, no interpolated missing months
    (a month without a reading would move its pages into the next), no billed closings yet (a first run, or a run
    whose earlier periods were all billed from readings in place), whole periods (no device joining or leaving
    inside one, no contract end), no minimum charge. The check after it proves the run gave the same lines.
    """
    if dialect == "postgresql":
        local_day = "CAST(r.taken_at AT TIME ZONE :zone AS DATE)"
        shifted = "(p.day - p.grace_days)"
        price = "ROUND(b.price * POWER(1 + o.escalation_percent / 100, (o.k * o.period_months) / 12), 6)"
    else:  # no time zones in SQLite: the zone's offset on as_of (exact for readings away from midnight)
        local_day = "date(r.taken_at, :shift)"
        shifted = "date(p.day, '-' || p.grace_days || ' days')"
        price = "NULL"
    quantity = "(CASE WHEN b.up_to IS NULL OR b.up_to > o.pages THEN o.pages ELSE b.up_to END) - b.lower_bound"
    return f"""
WITH stays AS (
    SELECT r.id AS reading_id, r.taken_at, l.id AS line_id, l.contract_id, l.device_id, l.start_date AS line_start,
           l.end_date AS line_end, c.start_date, c.period_months, c.grace_days, c.escalation_percent,
           {local_day} AS day
    FROM metering_reading r
    JOIN rentals_contract_line l ON l.device_id = r.device_id
    JOIN rentals_contract c ON c.id = l.contract_id
    WHERE r.status IN ('accepted', 'estimated') AND c.state IN ('active', 'suspended', 'ended')
), shifted AS (
    SELECT p.*, {shifted} AS shifted FROM stays p
    WHERE p.day >= p.line_start AND p.day <= COALESCE(p.line_end, :as_of) AND p.day <= :as_of
), buckets AS (
    SELECT p.*,
           CASE WHEN shifted < start_date THEN 0 ELSE {_months(dialect, "shifted", "start_date")} / period_months END
               AS k
    FROM shifted p
), deltas AS (
    SELECT b.contract_id, b.device_id, v.meter, b.period_months, b.escalation_percent, b.start_date, b.k,
           v.value - COALESCE(
               LAG(v.value) OVER (PARTITION BY b.line_id, v.meter ORDER BY b.taken_at, b.reading_id), lc.start_value
           ) AS pages
    FROM buckets b
    JOIN metering_reading_value v ON v.reading_id = b.reading_id
    JOIN rentals_line_counter lc ON lc.line_id = b.line_id AND lc.meter = v.meter
), used AS (
    SELECT contract_id, device_id, meter, k, period_months, escalation_percent,
           CASE WHEN SUM(pages) < 0 THEN 0 ELSE SUM(pages) END AS used
    FROM deltas
    WHERE (k + 1) * period_months <= {_months(dialect, ":as_of", "start_date")}
    GROUP BY contract_id, device_id, meter, k, period_months, escalation_percent, start_date
), overage AS (
    SELECT u.contract_id, CASE WHEN a.pooled THEN NULL ELSE u.device_id END AS device_id, u.meter, u.k,
           u.period_months, u.escalation_percent, a.id AS allowance_id, SUM(u.used) - a.included AS pages
    FROM used u JOIN rentals_allowance a ON a.contract_id = u.contract_id AND a.meter = u.meter
    GROUP BY u.contract_id, CASE WHEN a.pooled THEN NULL ELSE u.device_id END, u.meter, u.k, u.period_months,
             u.escalation_percent, a.id, a.included
    HAVING SUM(u.used) > a.included
), bands AS (
    SELECT allowance_id, up_to, price,
           ROW_NUMBER() OVER (PARTITION BY allowance_id ORDER BY position) AS band,
           COALESCE(LAG(up_to) OVER (PARTITION BY allowance_id ORDER BY position), 0) AS lower_bound
    FROM rentals_price_band
)
SELECT o.contract_id, o.k, o.meter, o.device_id, b.band, {quantity} AS quantity, {price} AS unit_price
FROM overage o JOIN bands b ON b.allowance_id = o.allowance_id
WHERE {quantity} > 0
"""


def lower_bound(as_of: dt.date, repeat: int = 3) -> tuple[float, dict[tuple, tuple]]:
    """The statement's best time of `repeat` (executed and every row fetched) and its overage lines: (contract,
    period index, meter, device or None when pooled, band) -> (pages, unit price, amount; None on SQLite)."""
    from core import clock
    from core.db import db

    dialect = db.session.get_bind().dialect.name
    zone = clock.timezone()
    offset = zone.utcoffset(dt.datetime.combine(as_of, dt.time(12)))
    statement = sa.text(lower_bound_sql(dialect)).bindparams(sa.bindparam("as_of", as_of, type_=sa.Date))
    params = {"zone": zone.key} if dialect == "postgresql" else {"shift": f"{offset.total_seconds():+.0f} seconds"}
    best, rows = float("inf"), []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = db.session.execute(statement, params).all()
        best = min(best, time.perf_counter() - started)
        db.session.rollback()
    lines = {}
    for contract_id, k, meter, device_id, band, quantity, unit_price in rows:
        price = None if unit_price is None else Decimal(unit_price)
        amount = None if price is None else (int(quantity) * price).quantize(Decimal("0.01"), ROUND_HALF_UP)
        lines[(contract_id, k, meter, device_id, band)] = (int(quantity), price, amount)
    return best, lines


def stored_overage() -> dict[tuple, tuple]:
    """The overage lines billing runs stored (drafts and posted invoices), keyed as `lower_bound`'s lines."""
    from core.db import db
    from modules.invoicing.models import Invoice, InvoiceLine

    rows = db.session.execute(
        sa.select(InvoiceLine.source_ref, InvoiceLine.quantity, InvoiceLine.unit_price, InvoiceLine.amount)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.source == "metering", InvoiceLine.source_ref.like("overage:%"), Invoice.state != "cancelled")
    )
    lines = {}
    for source_ref, quantity, unit_price, amount in rows:
        _kind, contract_id, k, meter, device, band = source_ref.split(":")
        key = (int(contract_id), int(k), meter, None if device == "pool" else int(device), int(band))
        lines[key] = (int(quantity), unit_price, amount)
    return lines


def check_lower_bound(backend: str, expected: dict[tuple, tuple], what: str) -> None:
    """Fail loudly unless the stored overage lines are the statement's: the same keys, pages, prices and amounts."""
    stored = stored_overage()
    compare = (lambda value: value) if backend == "postgresql" else (lambda value: value[:1])  # pages only on SQLite
    differences = [
        f"  {key}: lower bound {expected.get(key, 'none')}, run {stored.get(key, 'none')}"
        for key in sorted(expected.keys() | stored.keys(), key=str)
        if key not in expected or key not in stored or compare(expected[key]) != compare(stored[key])
    ]
    if differences:
        raise SystemExit(
            f"[{backend}] the lower bound does NOT match {what}: {len(expected)} lines against {len(stored)} stored, "
            f"{len(differences)} differ:\n" + "\n".join(differences[:30])
        )
    checked = "pages, unit prices and amounts" if backend == "postgresql" else "pages"
    print(f"[{backend}] lower bound matches {what}: {len(stored)} overage lines ({checked})")


def render_pdfs(backend: str, count: int) -> None:
    from core.db import db
    from modules.invoicing import pdf
    from modules.invoicing.models import Invoice

    sample = db.session.scalars(sa.select(Invoice).order_by(Invoice.id).limit(count)).all()
    started = time.perf_counter()
    try:
        for invoice in sample:
            pdf.render_pdf(invoice)
    except Exception as error:  # the renderer (bench/pdf.py measures it) must not lose the billing figures
        print(f"[{backend}] PDF: rendering failed, {type(error).__name__}: {error}")
        db.session.rollback()
        return
    elapsed = time.perf_counter() - started
    print(
        f"[{backend}] PDF: {len(sample)} renders of {len(sample[0].lines) if sample else 0} lines in "
        f"{elapsed:.1f} s ({len(sample) / elapsed:.1f}/s)"
    )


def forget_billing() -> None:
    """Delete every run, draft and billed closing, so the next run bills everything again."""
    from core.db import db

    for table in (
        "metering_billed_closing",
        "invoicing_billed_ref",
        "invoicing_invoice_pdf",
        "invoicing_invoice_line",
        "invoicing_invoice",
        "invoicing_run_customer",
        "invoicing_run_issue",
        "invoicing_billing_run",
        "core_job",
    ):
        db.session.execute(sa.text(f"DELETE FROM {table}"))
    db.session.commit()


class MemorySampler(threading.Thread):
    """Samples the resident high-water mark (VmHWM, KiB) of some processes and of their children, 20 times a second.

    VmHWM only grows, so a peak between two samples still shows in the next one; what a short-lived child adds in
    its last 50 ms may be missed.
    """

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peaks, self.stopping = pids, {"worker": 0, "job child": 0}, threading.Event()

    @staticmethod
    def high_water(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as status:
                return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
        except OSError:  # the process has just exited
            return 0

    @staticmethod
    def children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return [int(child) for child in children.read().split()]
        except OSError:
            return []

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            for pid in self.pids:
                self.peaks["worker"] = max(self.peaks["worker"], self.high_water(pid))
                for child in self.children(pid):
                    self.peaks["job child"] = max(self.peaks["job child"], self.high_water(child))

    def stop(self) -> dict[str, int]:
        self.stopping.set()
        self.join()
        return self.peaks


def run_with_workers(backend: str, url: str, redis_url: str, workers: int) -> tuple[float, int]:
    """The same run through `workers` RQ worker processes (`flask worker --burst`), timed until the last one exits.

    Returns the seconds and the peak resident memory (KiB) of the largest worker process or job child ("work horse",
    RQ forks one per job), as `MemorySampler` sees it.
    """
    import redis

    from core.db import db
    from modules.invoicing import runs
    from modules.invoicing.models import InvoiceLine

    redis.Redis.from_url(redis_url).flushdb()
    app = build_app(url, redis_url)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        JOB_QUEUE=QUEUE,
        SECRET_KEY="bench",
        COPYDESK_MODULES=",".join(MODULES),
        MAIL_SERVER="",
    )
    with app.app_context(), tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run = runs.create_run(AS_OF)
        db.session.commit()
        runs.launch_run(run.id)
        flask = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "worker", "--burst"]
        logs = [Path(folder) / f"worker{n}.log" for n in range(workers)]
        processes = []
        for log in logs:
            with log.open("wb") as stderr:
                processes.append(subprocess.Popen(flask, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
        sampler = MemorySampler([process.pid for process in processes])
        sampler.start()
        for process in processes:
            process.wait()
        peaks = sampler.stop()
        peak = max(peaks.values())
        elapsed = time.perf_counter() - started
        db.session.expire_all()
        lines = db.session.scalar(sa.select(sa.func.count()).select_from(InvoiceLine))
        run = db.session.get(runs.BillingRun, run.id)
        print(
            f"[{backend}] billing run, {workers} RQ workers: {lines} lines in {elapsed:.1f} s "
            f"({lines / elapsed:.0f} lines/s), status {run.status}, {run.done}/{run.total} customers"
        )
        print(
            f"[{backend}] a worker's peak memory (VmHWM): {peak / 1024:.0f} MiB "
            f"(workers {peaks['worker'] / 1024:.0f} MiB, job children {peaks['job child'] / 1024:.0f} MiB)"
        )
        if run.status != "done":
            print(b"\n".join(log.read_bytes() for log in logs).decode(errors="replace")[-3000:])
        db.session.remove()
        db.engine.dispose()
    return elapsed, peak


def add_month_of_readings(day: dt.date) -> int:
    """One more accepted reading per device on `day`, 25-45 (bw) and 4-9 (colour) pages a day after its latest."""
    from core.clock import as_utc
    from core.db import db
    from modules.metering.models import Reading, ReadingValue

    rng = random.Random(day.toordinal())
    latest = sa.select(Reading.device_id, sa.func.max(Reading.id).label("id")).group_by(Reading.device_id).subquery()
    rows = db.session.execute(
        sa.select(latest.c.device_id, Reading.taken_at, ReadingValue.meter, ReadingValue.value)
        .join(Reading, Reading.id == latest.c.id)
        .join(ReadingValue, ReadingValue.reading_id == Reading.id)
        .order_by(latest.c.device_id, ReadingValue.meter)
    )
    last: dict[int, tuple[dt.datetime, dict[str, int]]] = {}
    for device_id, taken_at, meter, value in rows:
        last.setdefault(device_id, (taken_at, {}))[1][meter] = value
    zone = ZoneInfo("Europe/Rome")
    taken_at = dt.datetime.combine(day, dt.time(16), zone).astimezone(dt.UTC)
    reading_id = db.session.scalar(sa.select(sa.func.max(Reading.id)))
    readings, values = [], []
    for device_id, (previous, counters) in sorted(last.items()):
        days = (day - as_utc(previous).astimezone(zone).date()).days
        counters = {
            meter: value + max(0, rng.randint(*RATES[meter]) * days + rng.randint(-60, 60))
            for meter, value in counters.items()
        }
        reading_id += 1
        add_reading(readings, values, reading_id, device_id, taken_at, counters)
    insert_readings(readings, values, reading_id)
    db.session.commit()
    return len(readings)


def _count(model: type) -> int:
    from core.db import db

    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def monthly_run(backend: str, url: str) -> None:
    """The month-end run: everything up to the previous month is billed (the run as of AS_OF), a reading per device
    arrives on MONTH_READING, and a run as of MONTH_AS_OF bills one period per contract (the next fee, in advance,
    and the overage of the month just ended), over the same year of history and billed closings."""
    from core.db import db
    from modules.invoicing import runs
    from modules.invoicing.models import Invoice, InvoiceLine

    app = build_app(url)
    with app.app_context():
        added = add_month_of_readings(MONTH_READING)
        analyze()  # a month after the first run autovacuum (off here) would have analyzed the tables it filled
        invoices, lines = _count(Invoice), _count(InvoiceLine)
        started = time.perf_counter()
        run = runs.create_run(MONTH_AS_OF)
        db.session.commit()
        launch(run.id, "the monthly run")
        elapsed = time.perf_counter() - started
        db.session.expire_all()
        run = db.session.get(runs.BillingRun, run.id)
        print(
            f"[{backend}] monthly run inline (as of {MONTH_AS_OF}, {added} new readings): "
            f"{_count(Invoice) - invoices} drafts, {_count(InvoiceLine) - lines} lines in {elapsed:.1f} s, "
            f"status {run.status}, {run.done}/{run.total} customers"
        )
        _seconds, expected = lower_bound(MONTH_AS_OF, repeat=1)
        check_lower_bound(backend, expected, f"every run so far, as of {MONTH_AS_OF}")
        db.session.remove()
        db.engine.dispose()


def bench(backend: str, scale: float, pg_url: str, pdfs: int, workers: int, redis_url: str) -> None:
    from core.db import db

    contracts = max(5, int(10_000 * scale))
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_database(backend, pg_url, Path(folder))
        app = migrate(url)
        with app.app_context():
            started = time.perf_counter()
            populate(contracts)
            print(
                f"[{backend}] {contracts} contracts, {contracts * DEVICES_PER_CONTRACT} devices, "
                f"{contracts * DEVICES_PER_CONTRACT * len(READING_DAYS)} readings created in "
                f"{time.perf_counter() - started:.1f} s"
            )
            started = time.perf_counter()
            ask_sources()
            asking = time.perf_counter() - started
            print(f"[{backend}] asking the sources alone (read only): {asking:.1f} s")
            inline = run_inline(backend)
            lower, expected = lower_bound(AS_OF)
            print(f"[{backend}] SQL lower bound (one statement, best of 3): {lower * 1000:.0f} ms")
            check_lower_bound(backend, expected, "the run")
            print(
                f"[{backend}] run inline / lower bound: {inline / lower:.0f}x; "
                f"asking the sources alone / lower bound: {asking / lower:.0f}x"
            )
            render_pdfs(backend, pdfs)
            if workers:
                forget_billing()
            db.session.remove()
            db.engine.dispose()
        if workers:
            elapsed, _peak = run_with_workers(backend, url, redis_url, workers)
            app = build_app(url)
            with app.app_context():
                check_lower_bound(backend, expected, f"the run through {workers} workers")
                print(f"[{backend}] run with {workers} workers / lower bound: {elapsed / lower:.0f}x")
                db.session.remove()
                db.engine.dispose()
        monthly_run(backend, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (10,000 contracts)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1:5432/bench_billing")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--workers", type=int, default=0, help="also run through this many RQ workers")
    parser.add_argument("--pdfs", type=int, default=20, help="how many PDFs to render")
    parser.add_argument("--profile", action="store_true", help="profile the inline and monthly runs (slower)")
    args = parser.parse_args()
    PROFILE["on"] = args.profile
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args.scale, args.pg_url, args.pdfs, args.workers, args.redis_url)


if __name__ == "__main__":
    main()
