"""Benchmark of a billing run: a synthetic dealer (10,000 contracts, 20,000 devices, 12 months of readings).

    .venv/bin/python bench/billing.py --scale 0.02                      # a quick small run, both databases
    .venv/bin/python bench/billing.py --backend postgresql --workers 2  # full size, PostgreSQL, inline and 2 workers

One run as of 2026-02-05 bills 12 monthly fee periods and 11 ended periods of overage per contract. Printed: the
data generation (not part of any figure), asking the sources alone (read only), the run inline (ask, compute and
store the drafts), the same run again (nothing new), with --workers the run through that many `flask worker --burst`
processes on Redis (--redis-url, its queue `bench-billing`), and PDF renders per second (docs/performance.md).
Databases: --pg-url and --redis-url are emptied (defaults: bench_billing, Redis db 8); SQLite uses a temporary file.

Readings are bulk-inserted rows, not `metering.readings.record_reading` calls (which validate and audit each one and
would take longer than the run itself): status `accepted`, `source` api, the same fingerprint `record_reading`
computes, one value per meter, counters rising from the installation value. No audit entries, no `reading_accepted`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import create_app  # noqa: E402 -- after the path is set

AS_OF = dt.date(2026, 2, 5)
START = dt.date(2025, 3, 1)
CONTRACTS_PER_CUSTOMER = 5
DEVICES_PER_CONTRACT = 2
MODULES = ("rentals", "metering", "invoicing")
QUEUE = "bench-billing"
# One reading per month: the last day of March 2025 to January 2026 (closing the 11 ended periods), then February 3rd.
READING_DAYS = [dt.date(2025 + (month > 12), (month - 1) % 12 + 1, 1) - dt.timedelta(days=1) for month in range(4, 15)]
READING_DAYS.append(dt.date(2026, 2, 3))
BATCH = 20_000
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
    from conftest import reset_postgres

    reset_postgres(pg_url)
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
    from modules.metering.history import fingerprint
    from modules.metering.models import Reading, ReadingValue

    rng = random.Random(2026)
    zone = ZoneInfo("Europe/Rome")
    readings, values = [], []
    reading_id = 0
    for device_id in device_ids:
        counters, previous = {"bw": 10_000, "color": 10_000}, START
        rates = {"bw": rng.randint(25, 45), "color": rng.randint(4, 9)}
        for day in READING_DAYS:
            for meter, rate in rates.items():
                counters[meter] += max(0, rate * (day - previous).days + rng.randint(-60, 60))
            previous = day
            taken_at = dt.datetime.combine(day, dt.time(16), zone).astimezone(dt.UTC)
            reading_id += 1
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
    for table, rows in ((Reading, readings), (ReadingValue, values)):
        for start in range(0, len(rows), BATCH):
            db.session.execute(sa.insert(table), rows[start : start + BATCH])
    if db.session.get_bind().dialect.name == "postgresql":  # ids were given: move the sequence past them
        db.session.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('metering_reading', 'id'), :n)"), {"n": reading_id}
        )
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
    """Each source's lines (and missing readings) for every customer, read only: the compute phase of a run."""
    from core.db import db
    from core.extension_points import BILLABLE_SOURCE, MissingReadingsReporter, implementations
    from modules.invoicing import runs

    customers = runs.customer_ids()
    for source in implementations(BILLABLE_SOURCE):
        started = time.perf_counter()
        lines = missing = 0
        for customer_id in customers:
            lines += len(source.billable_lines(customer_id, AS_OF))
            if isinstance(source, MissingReadingsReporter):
                missing += len(source.missing_readings(customer_id, AS_OF))
        print(f"  source {source.name}: {lines} lines, {missing} missing in {time.perf_counter() - started:.1f} s")
        db.session.rollback()


def run_inline(backend: str) -> None:
    from core.db import db
    from modules.invoicing import runs
    from modules.invoicing.models import Invoice, InvoiceLine

    started = time.perf_counter()
    run = runs.create_run(AS_OF)
    db.session.commit()
    runs.launch_run(run.id)
    elapsed = time.perf_counter() - started
    db.session.expire_all()
    invoices = db.session.scalar(sa.select(sa.func.count()).select_from(Invoice))
    lines = db.session.scalar(sa.select(sa.func.count()).select_from(InvoiceLine))
    run = db.session.get(runs.BillingRun, run.id)
    print(
        f"[{backend}] billing run inline: {invoices} drafts, {lines} lines in {elapsed:.1f} s "
        f"({lines / elapsed:.0f} lines/s), status {run.status}, {run.done}/{run.total} customers"
    )
    started = time.perf_counter()
    rerun = runs.create_run(AS_OF)
    db.session.commit()
    runs.launch_run(rerun.id)
    print(f"[{backend}] same run again (nothing new): {time.perf_counter() - started:.1f} s")


def render_pdfs(backend: str, count: int) -> None:
    from core.db import db
    from modules.invoicing import pdf
    from modules.invoicing.models import Invoice

    sample = db.session.scalars(sa.select(Invoice).order_by(Invoice.id).limit(count)).all()
    started = time.perf_counter()
    for invoice in sample:
        pdf.render_pdf(invoice)
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


def run_with_workers(backend: str, url: str, redis_url: str, workers: int) -> None:
    """The same run through `workers` RQ worker processes (`flask worker --burst`), timed until the last one exits."""
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
    with app.app_context():
        started = time.perf_counter()
        run = runs.create_run(AS_OF)
        db.session.commit()
        runs.launch_run(run.id)
        flask = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "worker", "--burst"]
        processes = [
            subprocess.Popen(flask, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(workers)
        ]
        errors = [process.communicate()[1] for process in processes]
        elapsed = time.perf_counter() - started
        db.session.expire_all()
        lines = db.session.scalar(sa.select(sa.func.count()).select_from(InvoiceLine))
        run = db.session.get(runs.BillingRun, run.id)
        print(
            f"[{backend}] billing run, {workers} RQ workers: {lines} lines in {elapsed:.1f} s "
            f"({lines / elapsed:.0f} lines/s), status {run.status}, {run.done}/{run.total} customers"
        )
        if run.status != "done":
            print(b"\n".join(errors).decode(errors="replace")[-3000:])
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
            print(f"[{backend}] asking the sources alone (read only): {time.perf_counter() - started:.1f} s")
            run_inline(backend)
            render_pdfs(backend, pdfs)
            if workers:
                forget_billing()
            db.session.remove()
            db.engine.dispose()
        if workers:
            run_with_workers(backend, url, redis_url, workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (10,000 contracts)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1:5432/bench_billing")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--workers", type=int, default=0, help="also run through this many RQ workers")
    parser.add_argument("--pdfs", type=int, default=20, help="how many PDFs to render")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args.scale, args.pg_url, args.pdfs, args.workers, args.redis_url)


if __name__ == "__main__":
    main()
