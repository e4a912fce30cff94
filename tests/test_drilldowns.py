"""Back-office drill-downs on the demo: each record links to what it relates to; the dashboard says what needs doing;
the language switch; the first-run banner."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.models import Company, Partner
from tests.auth_support import csrf_token, login, make_user
from tests.demo_snapshot import load_demo

# The demo as a dealer meets it on 1 December: October and November of Academia Cervantes's contract wait for readings.
NOW = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)


@pytest.fixture
def demo(app):
    with time_machine.travel(NOW, tick=False):
        load_demo(app, at=NOW)
        yield app


def staff(app, role: str = "dealer_admin"):
    with app.app_context():
        make_user(f"{role}@example.com", role=role, language="en")
    client = app.test_client()
    login(client, f"{role}@example.com")
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.get_data(as_text=True)


def hrefs(html: str) -> set[str]:
    return {href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', html)}


def ids(app, model, column, value) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(model.id).where(column == value))


def run_billing(app) -> int:
    from modules.invoicing import runs

    with app.app_context():
        run = runs.create_run(dt.date(2026, 11, 30))
        db.session.commit()
        runs.launch_run(run.id)
        return run.id


def test_contract_page_leads_to_its_customer_devices_readings_invoices_and_missing_readings(demo):
    from modules.invoicing.models import Invoice
    from modules.metering.models import Reading
    from modules.rentals.models import Contract, Device

    client = staff(demo)
    run_billing(demo)
    contract_id = ids(demo, Contract, Contract.number, "4/2026")
    device_id = ids(demo, Device, Device.serial, "PHBLR01234")
    with demo.app_context():
        customer_id = db.session.scalar(sa.select(Contract.customer_id).where(Contract.id == contract_id))
        reading_id = db.session.scalar(
            sa.select(Reading.id).where(Reading.device_id == device_id).order_by(Reading.taken_at.desc())
        )
        invoice_id = db.session.scalar(sa.select(Invoice.id).where(Invoice.contract_id == contract_id))
    html = page(client, f"/admin/rentals_contract/details/?id={contract_id}")
    links = hrefs(html)
    assert f"/admin/core_partner/details/?id={customer_id}" in links
    assert f"/admin/rentals_device/details/?id={device_id}" in links
    assert f"/admin/metering_reading/details/?id={reading_id}" in links
    assert f"/admin/invoicing_invoices_admin/{invoice_id}" in links
    # October and November wait for a closing reading: each row leads to the entry page with the device chosen.
    assert "Missing readings" in html
    assert "PHBLR01234 · Black and white · Oct 1, 2026 \u2013 Oct 31, 2026" in html
    assert f"/admin/metering_entry/?device_id={device_id}" in links


def test_device_page_leads_to_its_readings_contract_and_reading_requests(demo):
    from modules.metering.models import Reading
    from modules.rentals.models import Contract, Device

    client = staff(demo)
    device_id = ids(demo, Device, Device.serial, "VCF1234567")
    contract_id = ids(demo, Contract, Contract.number, "1/2026")
    with demo.app_context():
        reading_id = db.session.scalar(
            sa.select(Reading.id).where(Reading.device_id == device_id).order_by(Reading.taken_at.desc())
        )
    html = page(client, f"/admin/rentals_device/details/?id={device_id}")
    links = hrefs(html)
    assert f"/admin/rentals_contract/details/?id={contract_id}" in links
    assert f"/admin/metering_reading/details/?id={reading_id}" in links
    assert "/admin/metering_reading/?search=VCF1234567" in links
    assert f"/admin/metering_entry/?device_id={device_id}" in links
    # Studio Legale Bianchi's December request names this device.
    assert "Reading requests" in html and "Due Dec 31, 2026" in html
    assert "/admin/metering_campaigns/?q=Studio+Legale+Bianchi" in links


def test_customer_page_leads_to_its_contracts_devices_invoices_and_requests(demo):
    from modules.invoicing.models import Invoice
    from modules.rentals.models import Contract, Device

    client = staff(demo)
    run_billing(demo)
    customer_id = ids(demo, Partner, Partner.name, "Academia Cervantes SL")
    with demo.app_context():
        invoice_id = db.session.scalar(sa.select(Invoice.id).where(Invoice.customer_id == customer_id))
    html = page(client, f"/admin/core_partner/details/?id={customer_id}")
    links = hrefs(html)
    assert f"/admin/rentals_contract/details/?id={ids(demo, Contract, Contract.number, '4/2026')}" in links
    assert f"/admin/rentals_device/details/?id={ids(demo, Device, Device.serial, 'PHBLR01234')}" in links
    assert f"/admin/invoicing_invoices_admin/{invoice_id}" in links
    assert "/admin/invoicing_invoices_admin/?q=Academia+Cervantes+SL" in links
    assert "Due Oct 30, 2026" in html and "overdue" in html


def test_missing_reading_on_a_billing_run_opens_the_entry_page_with_its_device(demo):
    from modules.rentals.models import Device

    client = staff(demo)
    run_id = run_billing(demo)
    device_id = ids(demo, Device, Device.serial, "PHBLR01234")
    html = page(client, f"/admin/invoicing_runs_admin/{run_id}")
    entry = f"/admin/metering_entry/?device_id={device_id}"
    assert entry in hrefs(html)
    form = page(client, entry)
    assert f'name="device_id" value="{device_id}"' in form and "#PHBLR01234" in form


def test_a_technician_sees_no_invoices_on_a_contract_page(demo):
    from modules.rentals.models import Contract

    client = staff(demo, "technician")
    html = page(client, f"/admin/rentals_contract/details/?id={ids(demo, Contract, Contract.number, '4/2026')}")
    assert "/admin/invoicing_invoices_admin/" not in html


def test_dashboard_says_what_needs_doing_today_each_a_link_to_the_list(demo):
    client = staff(demo)
    run_billing(demo)
    html = page(client, "/admin/")
    cards = dict(
        (title.strip(), (href.replace("&amp;", "&"), value))
        for title, href, value in re.findall(
            r'<div class="text-muted small">([^<]+)</div>\s*<div class="h4 mb-0"><a href="([^"]+)">([^<]+)</a>', html
        )
    )
    # One: the meter channels demo's Konica counter report, held for review (a jump since its last reading).
    assert cards["Readings to review"] == ("/admin/metering_review/", "1")
    assert cards["Reading requests overdue"] == ("/admin/metering_campaigns/?status=overdue", "1")
    assert cards["Readings missing for billing"] == ("/admin/metering_missing/", "2")
    assert cards["Drafts to post"][0] == "/admin/invoicing_invoices_admin/?state=draft"
    assert int(cards["Drafts to post"][1]) > 0
    assert cards["Emails failed"] == ("/admin/outbox/?status=failed", "0")
    assert cards["Emails held in the outbox"][0] == "/admin/outbox/?status=kept"
    assert int(cards["Emails held in the outbox"][1]) > 0
    assert cards["Failed jobs"] == ("/admin/core_jobs/?status=failed", "0")
    missing = page(client, "/admin/metering_missing/")
    assert missing.count("Enter a reading") >= 2 and "Academia Cervantes SL" in missing


def test_language_switch_in_the_navbar_turns_the_same_page_italian(demo):
    client = staff(demo)
    url = "/admin/rentals_contract/"
    html = page(client, url)
    switch = html[html.index('id="language-switch"') :]
    assert 'action="/account/language"' in switch[:1500] and 'name="csrf_token"' in switch[:1500]
    token = csrf_token(client, url)
    response = client.post("/account/language", data={"csrf_token": token, "language": "it", "next": url})
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    assert "Contratti" in page(client, url)
    # Without the form's token nothing changes.
    refused = client.post("/account/language", data={"language": "es", "next": url})
    assert refused.status_code == 400
    assert "Contratti" in page(client, url)


def test_first_run_banner_asks_for_the_company_data_until_they_are_filled(app):
    client = staff(app)
    html = page(client, "/admin/")
    assert 'id="first-run"' in html
    assert "/admin/core_company/new/" in hrefs(html)
    with app.app_context():
        db.session.add(Company(name="Copie Srl", vat_number="12345670157", city="Milano", postal_code="20100"))
        db.session.commit()
        company_id = db.session.scalar(sa.select(Company.id))
    html = page(client, "/admin/")
    assert "Street" in html[html.index('id="first-run"') :][:600]
    assert f"/admin/core_company/edit/?id={company_id}" in hrefs(html)
    with app.app_context():
        company = db.session.get(Company, company_id)
        company.street, company.email = "Via Roma 1", "info@copie.it"
        db.session.commit()
    assert 'id="first-run"' not in page(client, "/admin/")


def test_first_run_banner_tells_back_office_to_ask_an_administrator(app):
    html = page(staff(app, "back_office"), "/admin/")
    assert 'id="first-run"' in html and "Ask a dealer administrator" in html
    assert "/admin/core_company/" not in html
