"""Helpers of the invoicing tests: a dealer, customers, contracts through the rentals API, runs through ours."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from PIL import Image, ImageDraw

from core.db import db
from core.extension_points import BillableLine
from core.models import Company, Partner
from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage
from tests.api_support import add_customer


def logo_png() -> bytes:
    """The dealer's logo: a small blue PNG."""
    image = Image.new("RGB", (240, 80), (30, 80, 160))
    ImageDraw.Draw(image).rectangle((20, 20, 220, 60), fill=(250, 250, 250))
    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def add_company() -> Company:
    company = Company(
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
        logo=logo_png(),
        logo_mimetype="image/png",
    )
    db.session.add(company)
    db.session.commit()
    return company


def billing_customer(name: str = "Studio Legale Bianchi", **fields) -> Partner:
    values = {
        "vat_number": "01234567897",
        "street": "Corso Italia 10",
        "postal_code": "10121",
        "city": "Torino",
        "province": "TO",
        "country": "IT",
        "sdi_code": "ABC1234",
        "email": "studio@bianchi.example",
        "payment_terms_days": 30,
        **fields,
    }
    return add_customer(name, **values)


def new_contract(client, headers, customer_id: int, serial: str, **terms) -> dict:
    device = client.post(
        "/api/v1/devices",
        json={"serial": serial, "manufacturer": "Kyocera", "model": "ECOSYS M5526cdw", "meters": ["bw", "color"]},
        headers=headers,
    )
    assert device.status_code == 201, device.get_data(as_text=True)
    body = {
        "customer_id": customer_id,
        "start_date": "2026-01-01",
        "period_months": 1,
        "fee": "50.00",
        "fee_timing": "advance",
        "allowances": [
            {"meter": "bw", "included": 1000, "pooled": False, "bands": [{"up_to": None, "price": "0.012"}]},
            {"meter": "color", "included": 200, "pooled": False, "bands": [{"up_to": None, "price": "0.09"}]},
        ],
        "devices": [{"device_id": device.get_json()["id"], "counters": {"bw": 10000, "color": 2000}}],
        **terms,
    }
    response = client.post("/api/v1/contracts", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def start_run(client, headers, as_of: str) -> dict:
    """POST a run and read it back (it has finished: jobs run inline without Redis)."""
    response = client.post("/api/v1/billing-runs", json={"as_of": as_of}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    run = client.get(f"/api/v1/billing-runs/{response.get_json()['id']}", headers=headers)
    assert run.status_code == 200
    return run.get_json()


def get_invoice(client, headers, invoice_id: int) -> dict:
    response = client.get(f"/api/v1/invoices/{invoice_id}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def manual_line(amount: str, vat_code: str | None = "22", description: str = "Assistenza tecnica", **fields) -> dict:
    """A line for POST /api/v1/invoices: quantity 1 at `amount`, with its VAT code."""
    line = {"description": description, "quantity": "1", "unit_price": amount, **fields}
    if vat_code is not None:
        line["vat_code"] = vat_code
    return line


def manual_invoice(client, headers, customer_id: int, lines: list[dict], status: int = 201, **fields) -> dict:
    """POST a manual draft; returns its JSON (or the problem, with `status` other than 201)."""
    response = client.post(
        "/api/v1/invoices", json={"customer_id": customer_id, "lines": lines, **fields}, headers=headers
    )
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def error_fields(problem: dict) -> list[str]:
    """The fields a 422 problem names, in order."""
    return [error["field"] for error in problem["errors"]]


def post_invoice(client, headers, invoice_id: int, issue_date: str = "2026-02-06") -> dict:
    """POST /post and read the posted document back."""
    response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": issue_date}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return get_invoice(client, headers, invoice_id)


def usage_line(
    customer_id: int,
    ref: str,
    quantity: int,
    price: str,
    contract_id: int | None = None,
    meter: str = "bw",
    available_from: dt.date = dt.date(2000, 1, 1),
    vat_rate: str = "22",
    period: tuple[dt.date, dt.date] = (dt.date(2026, 1, 1), dt.date(2026, 1, 31)),
    vat_code: str | None = None,
) -> BillableLine:
    """Put a metering-like overage line in the fake source for `customer_id`; returns it."""
    line = BillableLine(
        source="fake_usage",
        source_ref=ref,
        description=f"Overage {meter}: {quantity} pages",
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        vat_rate=Decimal(vat_rate),
        kind="overage",
        contract_id=contract_id,
        period_start=period[0],
        period_end=period[1],
        meter=meter,
        device_id=7,
        vat_code=vat_code,
    )
    fake_usage.LINES.setdefault(customer_id, []).append((available_from, line))
    return line
