"""Benchmark of the invoice PDF: xhtml2pdf alone on the baseline HTML against the delivery job's render-and-store.

    .venv/bin/python bench/pdf.py                  # 6, 40 and 300 lines, with and without a 1500x500 logo
    .venv/bin/python bench/pdf.py --repeats 1      # quicker

The bench builds the app (rentals, metering, invoicing) on a temporary SQLite database, a dealer whose logo is a
generated 1500x500 PNG (or none), and one posted invoice per size: half of its lines a contract fee, half a meter's
overage (so the usage detail page is printed too), as a billing run makes them.

Printed per invoice: the pages of the job's PDF; `bare`, xhtml2pdf alone (pisa.CreatePDF) on the HTML the delivery
job rendered before this work (commit 7f20631: the footer's `<pdf:pagecount/>`, a second layout pass, and the logo
as stored), the template rendered once beforehand and not timed; `job`,
`pdf.stored_pdf` as `jobs.deliver_invoice` calls it (render the HTML, lay it out, store the row; the invoice loaded
again from the database each time, the row rolled back after); and bare/job. Each figure is the best of --repeats
runs (x4 at 6 lines, x2 at 40; bare and job in turn), after one untimed warm-up run of each, in CPU seconds of the
bench process (what a render costs, steady on a shared machine) and in wall seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import create_app  # noqa: E402 -- after the path is set

MODULES = ("rentals", "metering", "invoicing")
SIZES = (6, 40, 300)
TEMPLATE_NAME = "invoicing/pdf/invoice.html"
LOGO_SIZE = (1500, 500)


def build_app(url: str):
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench",
        "REDIS_URL": None,
        "MAIL_SERVER": None,
        "COPYDESK_MODULES": list(MODULES),
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    return create_app(config)


def migrate(url: str):
    from core.migrate import upgrade_enabled
    from core.module_state import record_states, resolve_for_app

    app = build_app(url)
    with app.app_context():
        upgrade_enabled(app.extensions["copydesk"].resolution)
        record_states(resolve_for_app(app), app.config["COPYDESK_MODULES"])
    return build_app(url)


def large_logo() -> bytes:
    """A 1500x500 PNG as a dealer uploads it from a design tool: a gradient band, a lettering block, some grain."""
    import random

    from PIL import Image, ImageDraw

    width, height = LOGO_SIZE
    image = Image.new("RGB", LOGO_SIZE)
    draw = ImageDraw.Draw(image)
    for x in range(width):
        draw.line((x, 0, x, height), fill=(20 + x * 60 // width, 70 + x * 90 // width, 160))
    draw.rounded_rectangle((120, 140, 1380, 360), radius=60, fill=(250, 250, 250))
    for left in range(180, 1320, 120):
        draw.rectangle((left, 200, left + 80, 300), fill=(30, 80, 160))
    rng = random.Random(20)
    pixels = image.load()
    for _ in range(60_000):
        x, y = rng.randrange(width), rng.randrange(height)
        red, green, blue = pixels[x, y]
        pixels[x, y] = (min(255, red + 12), min(255, green + 12), min(255, blue + 12))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def seed(logo: bytes) -> dict[int, int]:
    """The dealer, a customer, the meter types and one posted invoice per size; {lines: invoice id}."""
    from core.db import db
    from core.models import Company, Partner
    from modules.invoicing.models import Invoice, InvoiceLine
    from modules.invoicing.services import compute_totals
    from modules.rentals.models import MeterType

    db.session.add(
        Company(
            name="Copiatrici Rossi Srl",
            vat_number="00743110157",
            fiscal_code="00743110157",
            street="Via Roma 1",
            postal_code="20121",
            city="Milano",
            province="MI",
            country="IT",
            iban="IT60X0542811101000000123456",
            tax_regime="RF01",
            email="amministrazione@rossi.example",
            logo=logo,
            logo_mimetype="image/png",
        )
    )
    for code, labels in {"bw": ("B/W", "B/N", "B/N"), "color": ("Colour", "Colore", "Color")}.items():
        db.session.add(MeterType(code=code, label_en=labels[0], label_it=labels[1], label_es=labels[2]))
    customer = Partner(
        name="Studio Legale Bianchi",
        is_customer=True,
        language="it",
        vat_number="01234567897",
        street="Corso Italia 10",
        postal_code="10121",
        city="Torino",
        province="TO",
        country="IT",
        sdi_code="ABC1234",
        email="studio@bianchi.example",
        payment_terms_days=30,
    )
    db.session.add(customer)
    db.session.flush()
    invoices = {}
    for number, size in enumerate(SIZES, start=1):
        lines = []
        for position in range(1, size + 1):
            month = dt.date(2025, (position - 1) % 12 + 1, 1)
            end = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
            if position % 2:
                values = {
                    "description": f"Canone noleggio contratto C-{position:04d} {month:%m/%Y}",
                    "quantity": Decimal(1),
                    "unit": "pz",
                    "unit_price": Decimal("50.00"),
                    "kind": "fee",
                    "source": "rentals",
                }
            else:
                values = {
                    "description": f"Copie eccedenti {'B/N' if position % 4 else 'Colore'} SN{position:07d}",
                    "quantity": Decimal(850 + position),
                    "unit": "pz",
                    "unit_price": Decimal("0.012000"),
                    "kind": "overage",
                    "meter": "bw" if position % 4 else "color",
                    "source": "metering",
                }
            amount = (values["quantity"] * values["unit_price"]).quantize(Decimal("0.01"))
            lines.append(
                InvoiceLine(
                    position=position,
                    vat_rate=Decimal(22),
                    vat_code="22",
                    amount=amount,
                    period_start=month,
                    period_end=end,
                    source_ref=f"bench:{size}:{position}",
                    **values,
                )
            )
        invoice = Invoice(customer_id=customer.id, lines=lines)
        compute_totals(invoice)
        # Posted as services.post leaves it, without its on-commit delivery (the bench times that itself).
        invoice.state = "posted"
        invoice.sequence_number = number
        invoice.year = 2026
        invoice.number = f"{number}/2026"
        invoice.issue_date = dt.date(2026, 2, 6)
        invoice.due_date = dt.date(2026, 3, 8)
        invoice.payment_method = "bank_transfer"
        db.session.add(invoice)
        db.session.flush()
        invoices[size] = invoice.id
    db.session.commit()
    return invoices


def baseline_html(app, invoice) -> str:
    """The HTML the delivery job rendered before this work (commit 7f20631): the template differed only in its
    footer's page count, `<pdf:pagecount/>` (a second layout pass), and the logo went in as stored."""
    from flask import render_template
    from markupsafe import Markup

    from modules.invoicing import pdf

    with pdf.customer_locale(invoice):
        context = pdf.document_context(invoice, Markup("<pdf:pagecount/>"))
        context["logo"] = pdf.logo_uri(context["company"], scaled=False)
        return render_template(TEMPLATE_NAME, **context)


def timed(function) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(app, invoice_id: int, repeats: int) -> dict[str, float | int]:
    """Pages, then the best CPU and wall seconds of bare and job, their runs taken in turn."""
    from pypdf import PdfReader
    from xhtml2pdf import pisa

    from core.db import db
    from modules.invoicing import pdf
    from modules.invoicing.models import Invoice

    html = baseline_html(app, db.session.get(Invoice, invoice_id))

    def bare():
        result = pisa.CreatePDF(html, dest=io.BytesIO(), encoding="utf-8")
        assert not result.err

    pages = []

    def job():
        db.session.expire_all()
        stored = pdf.stored_pdf(db.session.get(Invoice, invoice_id))
        pages.append(len(PdfReader(io.BytesIO(stored.content)).pages))
        db.session.rollback()

    bare(), job()  # warm-up: fonts, caches (the scaled logo), imports
    runs = {"bare": [], "job": []}
    for _ in range(repeats):
        runs["bare"].append(timed(bare))
        runs["job"].append(timed(job))
    figures: dict[str, float | int] = {"pages": pages[-1]}
    for name, times in runs.items():
        figures[f"{name}_cpu"] = min(cpu for cpu, _wall in times)
        figures[f"{name}_wall"] = min(wall for _cpu, wall in times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed runs per figure, best kept (default 2; x4 at 6 lines, x2 at 40)"
    )
    args = parser.parse_args()

    revision = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    print(f"date {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, checkout {revision.stdout.strip()}")
    load = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, load {load:.2f}, {platform.platform()}")
    print(f"best of {args.repeats} (x4 at 6 lines, x2 at 40); job = pdf.stored_pdf,")
    print("bare = xhtml2pdf alone on the HTML the job rendered at 7f20631 (<pdf:pagecount/>, the logo as stored)")
    print("cpu = CPU seconds of the bench process (steady on a shared machine), wall = elapsed seconds")
    header = ("lines", "logo", "pages", "bare cpu", "job cpu", "bare/job", "bare wall", "job wall", "bare/job")
    print("{:>5} {:>6} {:>5} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}".format(*header))
    logo = large_logo()
    for with_logo in (False, True):
        with tempfile.TemporaryDirectory(prefix="bench-pdf-") as folder:
            app = migrate(f"sqlite:///{Path(folder) / 'bench.sqlite'}")
            with app.app_context(), app.test_request_context():
                invoices = seed(logo if with_logo else None)
                for size, invoice_id in invoices.items():
                    # A short invoice renders in a tenth of a second: more runs to find its best.
                    repeats = args.repeats * {6: 4, 40: 2}.get(size, 1)
                    f = measure(app, invoice_id, repeats)
                    label = f"{len(logo) // 1024}kB" if with_logo else "none"
                    print(
                        f"{size:>5} {label:>6} {f['pages']:>5} {f['bare_cpu']:>9.3f} {f['job_cpu']:>9.3f} "
                        f"{f['bare_cpu'] / f['job_cpu']:>7.2f}x {f['bare_wall']:>9.3f} {f['job_wall']:>9.3f} "
                        f"{f['bare_wall'] / f['job_wall']:>7.2f}x",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
