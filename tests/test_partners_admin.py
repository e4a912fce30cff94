"""Staff manage customers and the company record in the back office, with fiscal identifiers checked on save."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from PIL import Image

from core.db import db
from core.models import Company, Partner
from tests.auth_support import csrf_token, login, make_user


def _png(size: tuple[int, int] = (1, 1), mode: str = "RGBA", colour=(200, 30, 30, 255)) -> bytes:
    output = io.BytesIO()
    Image.new(mode, size, colour).save(output, format="PNG")
    return output.getvalue()


PNG = _png()


def staff_client(app, role="dealer_admin"):
    with app.app_context():
        make_user(f"{role}@example.com", role=role)
    client = app.test_client()
    login(client, f"{role}@example.com")
    return client


def partner_form(**fields):
    data = {"name": "Studio Neri", "country": "IT", "language": "it", "payment_terms_days": "30", "is_customer": "y"}
    data.update(fields)
    return data


def test_back_office_creates_a_customer_with_a_valid_vat_number(app):
    client = staff_client(app, "back_office")
    url = "/admin/core_partner/new/"
    form = partner_form(vat_number="IT12345670157")
    response = client.post(url, data={"csrf_token": csrf_token(client, url), **form})
    assert response.status_code == 302
    with app.app_context():
        partner = db.session.scalar(sa.select(Partner).where(Partner.name == "Studio Neri"))
        assert partner.vat_number == "12345670157"


def test_invalid_vat_number_is_shown_on_the_form_and_nothing_is_saved(app):
    client = staff_client(app, "back_office")
    url = "/admin/core_partner/new/"
    response = client.post(url, data={"csrf_token": csrf_token(client, url), **partner_form(vat_number="12345670158")})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "12345670158 is not a valid VAT number" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 0


def test_technician_cannot_create_customers(app):
    client = staff_client(app, "technician")
    assert client.get("/admin/core_partner/").status_code == 200
    response = client.get("/admin/core_partner/new/")
    assert response.status_code in (302, 403)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 0


def test_company_logo_upload_is_stored_and_a_wrong_type_refused(app):
    client = staff_client(app)
    url = "/admin/core_company/new/"
    base = {"name": "Copyservice Srl", "country": "IT", "tax_regime": "RF01"}
    refused = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), **base, "logo_upload": (io.BytesIO(b"GIF89a"), "logo.gif")},
        content_type="multipart/form-data",
    )
    assert "PNG or JPEG" in refused.get_data(as_text=True)
    saved = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), **base, "logo_upload": (io.BytesIO(PNG), "logo.png", "image/png")},
        content_type="multipart/form-data",
    )
    assert saved.status_code == 302
    with app.app_context():
        company = db.session.scalar(sa.select(Company))
        assert (company.logo, company.logo_mimetype) == (PNG, "image/png")


def _upload_logo(app, content: bytes):
    """A new company record saved with this PNG as its logo, by a staff user: the response."""
    client = staff_client(app)
    url = "/admin/core_company/new/"
    base = {"name": "Copyservice Srl", "country": "IT", "tax_regime": "RF01"}
    logo = (io.BytesIO(content), "logo.png", "image/png")
    data = {"csrf_token": csrf_token(client, url), **base, "logo_upload": logo}
    return client.post(url, data=data, content_type="multipart/form-data")


def _bomb() -> bytes:
    """A 10,000 x 10,000 PNG of one colour: a few hundred kilobytes that decode to 100 megapixels."""
    output = io.BytesIO()
    Image.new("1", (10_000, 10_000), 1).save(output, format="PNG", optimize=True)
    return output.getvalue()


@pytest.mark.parametrize(
    "content",
    [_png((40, 20))[:-30], _bomb()],
    ids=["truncated", "decompression-bomb"],
)
def test_a_damaged_or_oversized_logo_is_refused_on_the_form_and_nothing_is_saved(app, content):
    refused = _upload_logo(app, content)
    assert refused.status_code == 200
    assert "PNG or JPEG" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Company)) is None


def test_a_large_16_bit_grey_logo_is_stored_scaled_and_still_grey_not_white(app):
    grey = _png((1500, 500), mode="I;16", colour=20_000)  # about 30% of white
    saved = _upload_logo(app, grey)
    assert saved.status_code == 302
    with app.app_context():
        company = db.session.scalar(sa.select(Company))
        stored = Image.open(io.BytesIO(company.logo))
        assert stored.size == (600, 200)
        assert stored.convert("L").getpixel((300, 100)) == 20_000 // 256
