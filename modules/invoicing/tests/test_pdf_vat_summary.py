"""The VAT summary and totals never stand alone on a page: the last lines go with them."""

from __future__ import annotations

import io

from pypdf import PdfReader

from core.db import db
from modules.invoicing import pdf
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, start_run, usage_line
from tests.api_support import bearer


def summary_page_has_lines(count: int, client, staff) -> bool:
    customer = billing_customer(f"Cliente {count}", language="en")
    for number in range(count):
        usage_line(customer.id, f"{count}:{number}", number + 1, "0.01", period=(None, None))
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    pages = [
        page.extract_text() for page in PdfReader(io.BytesIO(pdf.render_pdf(db.session.get(Invoice, invoice_id)))).pages
    ]
    summary = next(text for text in pages if "VAT summary" in text)
    return "Overage bw" in summary


def test_vat_summary_is_never_alone_on_its_page(client, db_session):
    add_company()
    staff = bearer("dealer_admin")

    alone = [count for count in range(14, 30) if not summary_page_has_lines(count, client, staff)]

    assert alone == []
