"""Staff manage customers and the company record in the back office, with fiscal identifiers checked on save."""

from __future__ import annotations

import io

import sqlalchemy as sa

from core.db import db
from core.models import Company, Partner
from tests.auth_support import csrf_token, login, make_user

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


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
