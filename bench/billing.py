"""Benchmark of a billing run: a synthetic dealer (10,000 contracts, 20,000 devices), on SQLite and PostgreSQL.

    .venv/bin/python bench/billing.py --scale 0.05            # a quick small run
    .venv/bin/python bench/billing.py --backend postgresql    # full size, PostgreSQL only

Prints the time to compute and store the drafts of one run as of 2026-02-05 (12 monthly fee periods per contract)
and the PDF renders per second. The overage part waits for the metering source (see docs/performance.md).
PostgreSQL: the database in --pg-url is emptied (default test_invoicing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import create_app

AS_OF = dt.date(2026, 2, 5)
START = dt.date(2025, 3, 1)
CONTRACTS_PER_CUSTOMER = 5
DEVICES_PER_CONTRACT = 2


def build_app(url: str):
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench",
        "REDIS_URL": None,
        "MAIL_SERVER": None,
        "COPYDESK_MODULES": ["rentals", "invoicing"],
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


def bench(backend: str, scale: float, pg_url: str, pdfs: int) -> None:
    from core.db import db
    from modules.invoicing import pdf, runs
    from modules.invoicing.models import Invoice, InvoiceLine

    contracts = max(5, int(10_000 * scale))
    with tempfile.TemporaryDirectory() as folder:
        app = migrate(fresh_database(backend, pg_url, Path(folder)))
        with app.app_context():
            started = time.perf_counter()
            populate(contracts)
            print(
                f"[{backend}] {contracts} contracts, {contracts * 2} devices created in "
                f"{time.perf_counter() - started:.1f} s"
            )
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
                f"[{backend}] billing run: {invoices} drafts, {lines} lines in {elapsed:.1f} s "
                f"({lines / elapsed:.0f} lines/s), status {run.status}, {run.done}/{run.total} customers"
            )
            started = time.perf_counter()
            rerun = runs.create_run(AS_OF)
            db.session.commit()
            runs.launch_run(rerun.id)
            print(f"[{backend}] same run again (nothing new): {time.perf_counter() - started:.1f} s")
            sample = db.session.scalars(sa.select(Invoice).order_by(Invoice.id).limit(pdfs)).all()
            started = time.perf_counter()
            for invoice in sample:
                pdf.render_pdf(invoice)
            elapsed = time.perf_counter() - started
            print(
                f"[{backend}] PDF: {len(sample)} renders of {len(sample[0].lines) if sample else 0} lines in "
                f"{elapsed:.1f} s ({len(sample) / elapsed:.1f}/s)"
            )
            db.session.remove()
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (10,000 contracts)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1:5432/test_invoicing")
    parser.add_argument("--pdfs", type=int, default=20, help="how many PDFs to render")
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        bench(backend, args.scale, args.pg_url, args.pdfs)


if __name__ == "__main__":
    main()
