"""The invoice PDF's "page X/Y" on every page of a long invoice, and the dealer's logo stored and printed small."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest
import sqlalchemy as sa
from PIL import Image, ImageDraw
from pypdf import PdfReader

from core.db import db
from core.models import Company
from modules.invoicing import pdf
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, start_run, usage_line
from tests.api_support import bearer
from tests.auth_support import csrf_token, login, make_user

PAGE = re.compile(r"page (\d+)/(\d+)")


def large_logo(size=(1500, 500)) -> bytes:
    """A logo as exported from a design tool, far larger than the 1.6 cm it is printed at."""
    image = Image.new("RGB", size, (30, 80, 160))
    ImageDraw.Draw(image).rectangle((100, 100, size[0] - 100, size[1] - 100), fill=(250, 250, 250))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def posted_invoice(client, staff, lines: int) -> int:
    customer = billing_customer(language="en")
    for number in range(lines):
        usage_line(customer.id, f"long:{number}", 800 + number, "0.012", meter="bw" if number % 2 else "color")
    invoice_id = start_run(client, staff, "2026-02-05")["invoice_ids"][0]
    response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-02-06"}, headers=staff)
    assert response.status_code == 200, response.get_data(as_text=True)
    return invoice_id


def footers(content: bytes) -> list[tuple[int, int]]:
    """(X, Y) of each page's "page X/Y"."""
    found = []
    for page in PdfReader(io.BytesIO(content)).pages:
        match = PAGE.search(page.extract_text())
        assert match, page.extract_text()[:200]
        found.append((int(match[1]), int(match[2])))
    return found


def printed_image_sizes(content: bytes) -> list[tuple[int, int]]:
    first = PdfReader(io.BytesIO(content)).pages[0]
    return [Image.open(io.BytesIO(image.data)).size for image in first.images]


def test_a_300_line_invoice_numbers_every_page_with_the_page_count(app, client, db_session):
    add_company()
    staff = bearer("dealer_admin")
    invoice_id = posted_invoice(client, staff, 300)

    response = client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=staff)

    assert response.status_code == 200
    pages = len(PdfReader(io.BytesIO(response.data)).pages)
    assert pages > 10  # 300 lines on the invoice and again on the usage detail pages
    assert footers(response.data) == [(number, pages) for number in range(1, pages + 1)]
    # Poppler reads the same numbers, and no page count mark is left.
    text = poppler_text(response.data)
    assert [tuple(map(int, PAGE.search(page).groups())) for page in text.split("\f")[:pages]] == footers(response.data)
    assert pdf.PAGE_COUNT_MARK not in text


def poppler_text(content: bytes) -> str:
    """The text as poppler's pdftotext reads it (another reader than pypdf), pages separated by form feeds."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed")
    return subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout.decode()


def test_the_page_count_is_right_when_it_cannot_be_stamped(client, db_session, monkeypatch):
    add_company()
    staff = bearer("dealer_admin")
    invoice = db.session.get(Invoice, posted_invoice(client, staff, 70))
    monkeypatch.setattr(pdf, "stamp_page_count", lambda content: None)

    content = pdf.render_pdf(invoice)

    pages = len(PdfReader(io.BytesIO(content)).pages)
    assert pages >= 3
    assert footers(content) == [(number, pages) for number in range(1, pages + 1)]


def test_an_uploaded_large_logo_is_stored_scaled_and_printed(app, client, db_session):
    make_user("admin@example.com", role="dealer_admin")
    login(client, "admin@example.com")
    url = "/admin/core_company/new/"
    form = {"name": "Copiatrici Rossi Srl", "country": "IT", "tax_regime": "RF01", "vat_number": "00743110157"}
    upload = (io.BytesIO(large_logo()), "logo.png", "image/png")

    response = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), **form, "logo_upload": upload},
        content_type="multipart/form-data",
    )

    assert response.status_code == 302, response.get_data(as_text=True)
    company = db.session.scalar(sa.select(Company))
    assert company.logo_mimetype == "image/png"
    assert Image.open(io.BytesIO(company.logo)).size == (600, 200)  # 3:1 as uploaded, 1.6 cm at over 300 dpi
    invoice_id = posted_invoice(client, bearer("dealer_admin", email="api@example.com"), 3)
    content = pdf.render_pdf(db.session.get(Invoice, invoice_id))
    assert printed_image_sizes(content) == [(600, 200)]


def test_a_large_logo_stored_before_uploads_were_scaled_is_printed_scaled(client, db_session):
    company = add_company()
    company.logo = large_logo((1800, 450))
    db.session.commit()
    invoice_id = posted_invoice(client, bearer("dealer_admin"), 3)

    content = pdf.render_pdf(db.session.get(Invoice, invoice_id))

    assert printed_image_sizes(content) == [(600, 150)]
    assert Image.open(io.BytesIO(company.logo)).size == (1800, 450)  # the stored logo is left as it is
