"""The rentals back office through its real forms and CSRF tokens: a dealer sets up customer, device and contract."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import Partner
from modules.rentals.catalogue import find_or_create_model
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Contract, Device, DeviceModel
from tests.auth_support import CSRF_RE, login, make_customer, make_user


def logged_in(app, role: str, customer: bool = False, language: str = "en"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role, customer_id=make_customer() if customer else None, language=language)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def submit(client, url: str, data: dict, form_url: str | None = None, **kwargs):
    """POST `data` with the CSRF token of the form page at `form_url` (default: `url`), as a browser would."""
    token = CSRF_RE.search(client.get(form_url or url).get_data(as_text=True)).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def contract_form(customer_id: int, **overrides) -> dict:
    return {
        "customer_id": str(customer_id),
        "start_date": "2026-01-01",
        "end_date": "",
        "period_months": "3",
        "fee": "90,00",
        "fee_timing": "advance",
        "grace_days": "10",
        "minimum_charge": "150",
        "escalation_percent": "0",
        "vat_code": "22",
        "renewal_months": "12",
        "notice_days": "90",
        "invoice_notes": "Canone trimestrale",
        "allowances-0-meter": "bw",
        "allowances-0-included": "9000",
        "allowances-0-pooled": "y",
        "allowances-0-bands-0-up_to": "5000",
        "allowances-0-bands-0-price": "0.010",
        "allowances-0-bands-1-up_to": "",
        "allowances-0-bands-1-price": "0.008",
        "allowances-1-meter": "color",
        "allowances-1-included": "1500",
        "allowances-1-bands-0-price": "0.075",
        "allowances-2-meter": "",
        **overrides,
    }


@pytest.fixture
def catalogue(app):
    with app.app_context():
        model = find_or_create_model("Canon", "imageRUNNER ADVANCE DX C3826i", ["bw", "color"])
        db.session.commit()
        return model.id


def test_dealer_creates_customer_device_and_contract_with_bands_without_json(app, catalogue):
    client = logged_in(app, "dealer_admin")

    customer = submit(
        client,
        "/admin/core_partner/new/",
        {
            "name": "Farmacia San Marco Srl",
            "is_customer": "y",
            "country": "IT",
            "language": "it",
            "payment_terms_days": "30",
        },
    )
    assert customer.status_code == 302, customer.get_data(as_text=True)
    device = submit(
        client,
        "/admin/rentals_device/new/",
        {
            "model": str(catalogue),
            "serial": "2xk 0123456",
            "status": "in_stock",
            "customer": "__None",
            "ip_address": "",
        },
    )
    assert device.status_code == 302, device.get_data(as_text=True)
    with app.app_context():
        customer_id = db.session.scalar(sa.select(Partner.id).where(Partner.name == "Farmacia San Marco Srl"))
        device_id = db.session.scalar(sa.select(Device.id).where(Device.serial == "2XK0123456"))

    saved = submit(client, "/admin/rentals_contract/new/", contract_form(customer_id), follow_redirects=True)
    page = saved.get_data(as_text=True)
    assert "Contract 1/" in page and 'data-state="draft"' in page
    assert "up to 5,000 pages at €0.01; then €0.008" in page
    with app.app_context():
        contract = db.session.scalar(sa.select(Contract))
        assert (contract.fee, contract.minimum_charge) == (Decimal("90.00"), Decimal("150.00"))
        assert [(a.meter, a.included, a.pooled, len(a.bands)) for a in contract.allowances] == [
            ("bw", 9000, True, 2),
            ("color", 1500, False, 1),
        ]
        details = f"/admin/rentals_contract/details/?id={contract.id}"
        add_url = f"/admin/rentals_contract/devices/add/?id={contract.id}"

    added = submit(
        client,
        add_url,
        {"device_id": str(device_id), "start_date": "2026-01-01", "counter_bw": "150000", "counter_color": "40000"},
        form_url=details,
        follow_redirects=True,
    )
    page = added.get_data(as_text=True)
    assert 'data-state="active"' in page
    assert "Black and white 150,000, Colour 40,000" in page  # meters by their label
    assert re.search(r"<td>Apr 1, 2026</td><td>Jun 30, 2026</td><td>91</td><td>91</td><td>€90.00</td>", page)
    assert client.get(details).status_code == 200


def test_contract_form_shows_band_errors_on_the_row_and_writes_nothing(app, catalogue):
    client = logged_in(app, "back_office")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")

    response = submit(
        client,
        "/admin/rentals_contract/new/",
        contract_form(customer_id, **{"allowances-0-bands-1-up_to": "4000", "allowances-1-bands-0-price": "-1"}),
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The upper bounds must be ascending: 4000 is not above 5000." in page
    assert "Must not be negative." in page
    alert = re.search(r'<div class="alert alert-danger" role="alert" id="form-errors">(.*?)</div>', page, re.S).group(1)
    assert "2 allowance rows have a problem." in alert
    assert 'href="#allowances-0-bands-1-up_to">Allowance for bw, band 2</a>: The upper bounds must' in alert
    assert 'href="#allowances-1-bands-0-price">Allowance for color, band 1</a>: Must not be negative.' in alert
    assert 'value="4000"' in page  # what the user typed is still there
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0


def test_more_rows_button_adds_allowance_and_band_rows_without_saving(app, catalogue):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")

    page = submit(client, "/admin/rentals_contract/new/", {**contract_form(customer_id), "more_rows": "1"}).get_data(
        as_text=True
    )

    assert 'name="allowances-3-meter"' in page and 'name="allowances-0-bands-2-price"' in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0


def test_contract_page_reports_missing_counters_when_adding_a_device(app, catalogue):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")
        contract = create_contract({"customer_id": customer_id, "start_date": "2026-01-01"})
        device = create_device({"serial": "X1", "manufacturer": "Canon", "model": "imageRUNNER ADVANCE DX C3826i"})
        db.session.commit()
        contract_id, device_id = contract.id, device.id

    response = submit(
        client,
        f"/admin/rentals_contract/devices/add/?id={contract_id}",
        {"action": "add", "device_id": str(device_id), "start_date": "2026-01-01", "counter_bw": "100"},
        form_url=f"/admin/rentals_contract/details/?id={contract_id}",
    )

    assert response.status_code == 422
    assert "The color counter is missing." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Contract, contract_id).state == "draft"


def test_device_form_rejects_a_duplicate_serial_on_the_field(app, catalogue):
    client = logged_in(app, "technician")
    with app.app_context():
        create_device({"serial": "SN1", "manufacturer": "Canon", "model": "imageRUNNER ADVANCE DX C3826i"})
        db.session.commit()

    response = submit(
        client,
        "/admin/rentals_device/new/",
        {"model": str(catalogue), "serial": "sn1", "status": "in_stock", "customer": "__None"},
    )

    assert response.status_code == 200
    assert "already has a device with serial SN1" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 1


def test_lists_search_by_serial_and_filter_by_customer(app, catalogue):
    client = logged_in(app, "back_office")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")
        for serial in ("AAA111", "BBB222"):
            create_device({"serial": serial, "manufacturer": "Canon", "model": "imageRUNNER ADVANCE DX C3826i"})
        create_contract({"customer_id": customer_id, "start_date": "2026-01-01"})
        db.session.commit()

    devices = client.get("/admin/rentals_device/?search=AAA").get_data(as_text=True)
    contracts = client.get("/admin/rentals_contract/?search=Bellavista").get_data(as_text=True)

    assert "AAA111" in devices and "BBB222" not in devices
    assert "Hotel Bellavista Spa" in contracts


def test_staff_without_contract_rights_and_customers_cannot_edit_contracts(app, catalogue):
    technician = logged_in(app, "technician")
    assert technician.get("/admin/rentals_contract/").status_code == 200
    assert technician.get("/admin/rentals_contract/new/").status_code == 403
    customer = logged_in(app, "customer_admin", customer=True)
    for url in ("/admin/rentals_contract/", "/admin/rentals_device/", "/admin/rentals_import/"):
        assert customer.get(url).status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeviceModel)) == 1


def test_contract_pages_show_numbers_money_and_dates_in_the_users_language(app, catalogue):
    client = logged_in(app, "dealer_admin", language="it")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")

    page = submit(
        client,
        "/admin/rentals_contract/new/",
        contract_form(customer_id, fee="1234,5", escalation_percent="2.5", **{"allowances-0-bands-0-price": "0.0125"}),
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "dal 1 gen 2026 senza data di fine" in page
    assert "1.234,50\xa0€ per periodo" in page
    assert "2,5%" in page and "22%" in page
    assert "9.000" in page
    assert "fino a 5.000 pagine a 0,0125\xa0€; poi 0,008\xa0€" in page
    listing = client.get("/admin/rentals_contract/").get_data(as_text=True)
    assert "1 gen 2026" in listing and "1.234,50\xa0€" in listing


def test_adding_a_device_offers_a_blank_choice_and_each_devices_meters(app, catalogue):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        find_or_create_model("Kyocera", "ECOSYS P2040dn", ["bw"])
        contract = create_contract({"customer_id": make_customer(), "start_date": "2026-01-01"})
        for serial, maker, model in (
            ("COLOUR1", "Canon", "imageRUNNER ADVANCE DX C3826i"),
            ("MONO1", "Kyocera", "ECOSYS P2040dn"),
        ):
            create_device({"serial": serial, "manufacturer": maker, "model": model})
        db.session.commit()
        details = f"/admin/rentals_contract/details/?id={contract.id}"
        add_url = f"/admin/rentals_contract/devices/add/?id={contract.id}"

    page = client.get(details).get_data(as_text=True)
    select = re.search(r'<select[^>]*id="add-device-id".*?</select>', page, re.S).group(0)
    assert "required" in select
    assert re.search(r'^<select[^>]*>\s*<option value="">Choose a device</option>', select)
    assert re.search(r'data-meters="bw color"[^>]*>COLOUR1', select)
    assert re.search(r'data-meters="bw"[^>]*>MONO1', select)
    assert 'data-counters="add"' in page and 'data-meter="color"' in page
    assert "/admin/rentals_contract/static/rentals-contract.js" in page
    assert client.get("/admin/rentals_contract/static/rentals-contract.js").status_code == 200

    response = submit(client, add_url, {"action": "add", "device_id": "", "start_date": "2026-01-01"}, details)
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)


def test_device_form_names_the_blank_customer_choice(app, catalogue):
    client = logged_in(app, "dealer_admin")

    page = client.get("/admin/rentals_device/new/").get_data(as_text=True)

    assert '<option selected value="__None">— no customer —</option>' in page


def test_new_contract_page_names_contracts_once_above_its_heading(app, catalogue):
    client = logged_in(app, "dealer_admin")

    page = client.get("/admin/rentals_contract/new/").get_data(as_text=True)

    above = page[page.index("</nav>") : page.index("<h1")]
    assert above.count("Contracts") == 1


def test_installation_counter_of_thirteen_digits_is_refused_on_the_contract_page(app, catalogue):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        customer_id = make_customer("Hotel Bellavista Spa")
        contract = create_contract({"customer_id": customer_id, "start_date": "2026-01-01"})
        device = create_device({"serial": "X13", "manufacturer": "Canon", "model": "imageRUNNER ADVANCE DX C3826i"})
        db.session.commit()
        contract_id, device_id = contract.id, device.id

    response = submit(
        client,
        f"/admin/rentals_contract/devices/add/?id={contract_id}",
        {"action": "add", "device_id": str(device_id), "start_date": "2026-01-01"}
        | {"counter_bw": str(10**13), "counter_color": "0"},
        form_url=f"/admin/rentals_contract/details/?id={contract_id}",
    )

    assert response.status_code == 422
    assert "The bw counter has more than 12 digits." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Contract, contract_id).open_lines == []
