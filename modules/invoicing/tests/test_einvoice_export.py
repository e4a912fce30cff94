"""The period's e-invoices as one zip for the intermediary: the right files under the SdI's names, marked exported."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import escape

from core.db import db
from core.validation import ValidationError
from modules.invoicing import einvoice_exchange, fatturapa, services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.fatturapa_schema import validate
from modules.invoicing.tests.support import add_company, billing_customer, start_run, usage_line
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form

FEBRUARY = (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
EXPORT_URL = "/admin/invoicing_einvoices_admin/"


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


def posted_invoice(client, staff, customer, issue_date: str = "2026-02-06", ref: str | None = None) -> int:
    """A posted invoice of 1000 pages at 0.02 for `customer`, issued on `issue_date`; returns its id."""
    usage_line(customer.id, ref or f"{customer.id}:{issue_date}", 1000, "0.02")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": issue_date}, headers=staff)
    assert response.status_code == 200, response.get_data(as_text=True)
    return invoice_id


def zip_members(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def einvoice_state(invoice_id: int) -> str | None:
    db.session.expire_all()
    return db.session.get(Invoice, invoice_id).einvoice_state


def test_export_zip_holds_each_document_of_the_period_under_its_sdi_name_and_marks_it_exported(client, staff):
    first = posted_invoice(client, staff, billing_customer("Alfa Srl"))
    second = posted_invoice(client, staff, billing_customer("Beta Srl", vat_number="00488410010"))
    march = posted_invoice(client, staff, billing_customer("Gamma Srl", vat_number="07643520567"), "2026-03-02")

    result = einvoice_exchange.export_zip(*FEBRUARY)
    db.session.commit()

    invoices = [db.session.get(Invoice, invoice_id) for invoice_id in (first, second)]
    members = zip_members(result.content)
    assert sorted(members) == sorted(fatturapa.file_name(invoice) for invoice in invoices)
    assert result.file_name == "IT00743110157_2026-02-01_2026-02-28.zip"
    for invoice in invoices:
        xml = members[fatturapa.file_name(invoice)]
        validate(xml)
        assert invoice.number.encode() in xml
    assert [einvoice_state(first), einvoice_state(second), einvoice_state(march)] == ["exported", "exported", None]
    assert result.refused == {}


def test_only_documents_not_sent_yet_are_exported_an_exported_one_again_only_when_asked(client, staff):
    ids = [
        posted_invoice(client, staff, billing_customer(name, vat_number=vat))
        for name, vat in (
            ("Alfa Srl", "01234567897"),
            ("Beta Srl", "00488410010"),
            ("Gamma Srl", "07643520567"),
            ("Delta Srl", "00743110157"),
        )
    ]
    states = dict(zip(ids, ("exported", "delivered", "rejected", None), strict=True))
    for invoice_id, state in states.items():
        db.session.get(Invoice, invoice_id).einvoice_state = state
    db.session.commit()

    default = einvoice_exchange.export_zip(*FEBRUARY)
    db.session.rollback()
    resent = einvoice_exchange.export_zip(*FEBRUARY, resend=True)

    assert [invoice.id for invoice in default.invoices] == [ids[3]]
    assert list(zip_members(default.content)) == [fatturapa.file_name(db.session.get(Invoice, ids[3]))]
    assert sorted(invoice.id for invoice in resent.invoices) == sorted([ids[0], ids[3]])


def test_the_credit_note_of_a_rejected_invoice_is_internal_never_exported_the_new_invoice_is(client, staff):
    rejected = db.session.get(Invoice, posted_invoice(client, staff, billing_customer("Alfa Srl")))
    rejected.einvoice_state = "rejected"
    db.session.commit()
    note, draft = services.correct_rejected(rejected)
    services.post(draft, issue_date=dt.date(2026, 2, 20))
    db.session.commit()

    result = einvoice_exchange.export_zip(*FEBRUARY)
    db.session.commit()

    assert [invoice.id for invoice in result.invoices] == [draft.id]
    assert list(zip_members(result.content)) == [fatturapa.file_name(draft)]
    assert (einvoice_state(note.id), einvoice_state(draft.id), einvoice_state(rejected.id)) == (
        None,
        "exported",
        "rejected",
    )


def test_a_document_that_cannot_be_an_e_invoice_is_refused_with_the_reason_and_left_out(client, staff):
    good = posted_invoice(client, staff, billing_customer("Alfa Srl"))
    bad = posted_invoice(client, staff, billing_customer("Senza Indirizzo Srl", vat_number="00488410010", street=None))

    result = einvoice_exchange.export_zip(*FEBRUARY)
    db.session.commit()

    bad_invoice = db.session.get(Invoice, bad)
    with pytest.raises(ValidationError) as build_error:
        fatturapa.build(bad_invoice)
    assert list(result.refused) == [bad_invoice.number]
    assert result.refused[bad_invoice.number] == list(build_error.value.errors.values())  # the messages, no keys
    assert not any("customer." in reason for reason in result.refused[bad_invoice.number])
    assert result.refused_invoices[bad_invoice.number].id == bad
    assert [invoice.id for invoice in result.invoices] == [good]
    assert len(zip_members(result.content)) == 1
    assert (einvoice_state(good), einvoice_state(bad)) == ("exported", None)


@pytest.mark.parametrize(
    ("date_from", "date_to", "field"),
    [
        (dt.date(2026, 2, 28), dt.date(2026, 2, 1), "date_to"),
        (dt.date(2025, 1, 1), dt.date(2026, 1, 31), "date_to"),
        (None, dt.date(2026, 1, 31), "date_from"),
    ],
)
def test_a_bad_period_is_refused_naming_the_field(staff, date_from, date_to, field):
    with pytest.raises(ValidationError) as refused:
        einvoice_exchange.export_zip(date_from, date_to)
    assert list(refused.value.errors) == [field]


def test_api_export_answers_the_zip_and_refuses_a_bad_period_naming_the_field(client, staff):
    invoice_id = posted_invoice(client, staff, billing_customer())

    period = {"date_from": "2026-02-01", "date_to": "2026-02-28"}
    as_get = client.get("/api/v1/einvoices/export?date_from=2026-02-01&date_to=2026-02-28", headers=staff)
    state_after_get = einvoice_state(invoice_id)
    response = client.post("/api/v1/einvoices/export", json=period, headers=staff)
    again = client.post("/api/v1/einvoices/export", json=period, headers=staff)
    resent = client.post("/api/v1/einvoices/export", json={**period, "resend": True}, headers=staff)
    backwards = client.post(
        "/api/v1/einvoices/export", json={"date_from": "2026-02-28", "date_to": "2026-02-01"}, headers=staff
    )
    customer_token = bearer("customer_admin", customer=billing_customer("Altro Srl", vat_number="00488410010"))
    forbidden = client.post("/api/v1/einvoices/export", json=period, headers=customer_token)

    name = fatturapa.file_name(db.session.get(Invoice, invoice_id))
    assert as_get.status_code == 405 and state_after_get is None  # a GET changes nothing
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "IT00743110157_2026-02-01_2026-02-28.zip" in response.headers["Content-Disposition"]
    assert list(zip_members(response.data)) == [name]
    assert einvoice_state(invoice_id) == "exported"
    assert again.status_code == 200 and again.headers["X-Exported-Documents"] == "0"
    assert zip_members(again.data) == {}
    assert list(zip_members(resent.data)) == [name]
    assert backwards.status_code == 422
    assert [error["field"] for error in backwards.get_json()["errors"]] == ["date_to"]
    assert forbidden.status_code == 403


def test_cli_export_writes_the_zip_into_the_folder_and_fails_on_a_bad_period(app, client, staff, tmp_path):
    invoice_id = posted_invoice(client, staff, billing_customer())
    runner = app.test_cli_runner()

    done = runner.invoke(
        args=["invoicing", "einvoice-export", "--from", "2026-02-01", "--to", "2026-02-28", "--output", str(tmp_path)]
    )
    backwards = runner.invoke(
        args=["invoicing", "einvoice-export", "--from", "2026-02-28", "--to", "2026-02-01", "--output", str(tmp_path)]
    )
    not_a_date = runner.invoke(
        args=["invoicing", "einvoice-export", "--from", "1 Feb", "--to", "2026-02-28", "--output", str(tmp_path)]
    )
    period = ["invoicing", "einvoice-export", "--from", "2026-02-01", "--to", "2026-02-28"]
    nothing_new = runner.invoke(args=[*period, "--output", str(tmp_path / "again")])
    resent = runner.invoke(args=[*period, "--output", str(tmp_path / "resent"), "--resend"])

    assert done.exit_code == 0, done.output
    written = tmp_path / "IT00743110157_2026-02-01_2026-02-28.zip"
    assert list(zip_members(written.read_bytes())) == [fatturapa.file_name(db.session.get(Invoice, invoice_id))]
    assert str(written) in done.output
    assert einvoice_state(invoice_id) == "exported"
    assert backwards.exit_code != 0 and "--to" in backwards.output
    assert not_a_date.exit_code != 0 and "--from" in not_a_date.output
    assert nothing_new.exit_code == 0 and not (tmp_path / "again").exists()
    assert resent.exit_code == 0, resent.output
    resent_zip = tmp_path / "resent" / "IT00743110157_2026-02-01_2026-02-28.zip"
    assert list(zip_members(resent_zip.read_bytes())) == [fatturapa.file_name(db.session.get(Invoice, invoice_id))]


def logged_in(app, email: str, role: str):
    with app.app_context():
        make_user(email, role, language="it")
    browser = app.test_client()
    login(browser, email)
    return browser


def state_in(app, invoice_id: int) -> str | None:
    with app.app_context():
        return einvoice_state(invoice_id)


def test_einvoices_page_counts_states_downloads_the_zip_and_lists_refused_documents(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        good = posted_invoice(api, staff, billing_customer("Alfa Srl"))
        bad = posted_invoice(api, staff, billing_customer("Senza Indirizzo Srl", vat_number="00488410010", street=None))
        bad_number = db.session.get(Invoice, bad).number
        bad_customer = db.session.get(Invoice, bad).customer_id
        good_name = fatturapa.file_name(db.session.get(Invoice, good))
    office = logged_in(app, "office@rossi.example", "back_office")
    period = {"date_from": "2026-02-01", "date_to": "2026-02-28"}

    page = office.get(EXPORT_URL).get_data(as_text=True)
    asked = post_form(office, f"{EXPORT_URL}export", period, form_url=EXPORT_URL)
    state_after_asking = state_in(app, good)
    downloaded = post_form(office, f"{EXPORT_URL}export", {**period, "download": "1"}, form_url=EXPORT_URL)
    after = office.get(EXPORT_URL).get_data(as_text=True)

    assert 'data-state="none" data-count="2"' in page
    asked_page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and f'data-number="{bad_number}"' in asked_page
    refused_item = re.search(rf'<li data-number="{re.escape(bad_number)}">(.*?)</li>', asked_page).group(1)
    assert f'href="/admin/invoicing_invoices_admin/{bad}"' in refused_item  # the document and its customer, linked
    assert re.search(rf'href="[^"]*/{bad_customer}[/"]', refused_item) or f"id={bad_customer}" in refused_item
    assert "customer.street" not in asked_page and "customer." not in refused_item
    assert state_after_asking is None  # nothing is marked before the zip is downloaded
    assert downloaded.mimetype == "application/zip"
    assert list(zip_members(downloaded.data)) == [good_name]
    assert state_in(app, good) == "exported"
    assert 'data-state="exported" data-count="1"' in after and 'data-state="none" data-count="1"' in after


def test_einvoices_page_is_for_billing_staff_only(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        invoice_id = posted_invoice(api, bearer("dealer_admin"), billing_customer())
    technician = logged_in(app, "tech@rossi.example", "technician")

    page = technician.get(EXPORT_URL)
    export = technician.post(f"{EXPORT_URL}export", data={"date_from": "2026-02-01", "date_to": "2026-02-28"})

    assert page.status_code == 403
    assert export.status_code in (400, 403)
    assert state_in(app, invoice_id) is None


def test_einvoices_page_resends_an_exported_document_only_when_the_box_is_ticked(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        invoice_id = posted_invoice(api, bearer("dealer_admin"), billing_customer("Alfa Srl"))
        name = fatturapa.file_name(db.session.get(Invoice, invoice_id))
        db.session.get(Invoice, invoice_id).einvoice_state = "exported"
        db.session.commit()
    office = logged_in(app, "office@rossi.example", "back_office")
    period = {"date_from": "2026-02-01", "date_to": "2026-02-28"}

    page = office.get(EXPORT_URL).get_data(as_text=True)
    plain = post_form(office, f"{EXPORT_URL}export", period, form_url=EXPORT_URL)
    resent = post_form(office, f"{EXPORT_URL}export", {**period, "resend": "1"}, form_url=EXPORT_URL)

    assert 'name="resend"' in page
    assert plain.status_code == 302  # nothing new to export: back to the page
    assert resent.mimetype == "application/zip" and list(zip_members(resent.data)) == [name]
    assert state_in(app, invoice_id) == "exported"


def test_the_internal_credit_note_is_shown_as_not_sent_on_the_pages(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        rejected = db.session.get(Invoice, posted_invoice(api, bearer("dealer_admin"), billing_customer("Alfa Srl")))
        rejected.einvoice_state = "rejected"
        db.session.commit()
        note, _draft = services.correct_rejected(rejected)
        db.session.commit()
        note_id = note.id
    office = logged_in(app, "office@rossi.example", "back_office")

    listing = office.get(EXPORT_URL).get_data(as_text=True)
    details = office.get(f"/admin/invoicing_invoices_admin/{note_id}").get_data(as_text=True)

    with app.test_request_context(), force_locale("it"):
        label = str(escape(_("internal credit note, not sent")))
    assert '<tr data-einvoice-state="internal">' in listing and label in listing
    assert 'data-state="internal" data-count="1"' in listing and 'data-state="none" data-count="0"' in listing
    assert label in details
