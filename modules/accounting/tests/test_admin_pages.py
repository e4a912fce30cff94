"""The accounting back office as the dealer's office uses it: every accounting page opens for staff who keep the
books and for nobody else; a manual entry posted from its form (an unbalanced one shown with its problem, nothing
written) and reversed from its page; an account added to the chart; the settings saved or refused by field; the
dashboard's receivables card and the customer's panel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import lxml.html
import pytest
import sqlalchemy as sa
from flask import url_for
from flask_admin.contrib.sqla import ModelView

from core.db import db
from core.extensions import limiter
from core.models import Partner
from modules.accounting import chart, payments, settings
from modules.accounting.models import Account, Entry
from modules.accounting.tests.support import make_company, make_customer, make_posted_invoice
from tests.auth_support import login, make_user, post_form

ENTRIES = "/admin/accounting_entry/"
SETTINGS = "/admin/accounting_settings/"


@pytest.fixture
def books(app) -> dict[str, int]:
    """Two customers with posted invoices (one paid in part, one overdue), a manual entry; the dealer's staff and a
    customer's admin who log in. Outside the test's requests: each request has its own app context, as in use."""
    with app.app_context():
        make_company()
        bianchi = make_customer("Studio Legale Bianchi")
        rossi = make_customer("Farmacia Rossi", vat_number="00488410010")
        lines = [("fee", "100.00", "22"), ("overage", "50.00", "22")]
        paid = make_posted_invoice(bianchi, lines, dt.date(2026, 9, 30))
        late = make_posted_invoice(rossi, [("consumable", "80.00", "22")], dt.date(2026, 10, 15))
        payments.record_payment(bianchi.id, Decimal("100.00"), dt.date(2026, 10, 20), invoice_id=paid.id)
        db.session.commit()
        make_user("admin@dealer.example", "dealer_admin", name="Dealer Admin")
        make_user("office@dealer.example", "back_office", name="Back Office")
        make_user("tech@dealer.example", "technician", name="Tecnico Rossi")
        make_user("anna@bianchi.example", "customer_admin", customer_id=bianchi.id, name="Anna Bianchi")
        return {"bianchi": bianchi.id, "rossi": rossi.id, "paid": paid.id, "late": late.id}


def staff(app, email: str = "office@dealer.example"):
    limiter.reset()
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def text_of(html: str, xpath: str) -> str:
    return " ".join(" ".join(node.text_content().split()) for node in lxml.html.fromstring(html).xpath(xpath))


def accounting_pages(app) -> list[str]:
    """Every page of the accounting views: each view's index, and a model view's first record and its forms."""
    pages = []
    with app.test_request_context():
        for view in app.extensions["copydesk"].admin._views:
            if not view.endpoint.startswith("accounting_"):
                continue
            if isinstance(view, ModelView):
                pages.append(url_for(f"{view.endpoint}.index_view"))
                first = db.session.scalar(sa.select(view.model).limit(1))
                if first is not None:
                    pages.append(url_for(f"{view.endpoint}.details_view", id=view.get_pk_value(first)))
                    if getattr(view, "allow_edit", True):
                        pages.append(url_for(f"{view.endpoint}.edit_view", id=view.get_pk_value(first)))
                if getattr(view, "allow_create", True):
                    pages.append(url_for(f"{view.endpoint}.create_view"))
            else:
                pages.append(url_for(f"{view.endpoint}.index"))
    return pages


def test_every_accounting_page_opens_for_the_office_and_for_nobody_else(app, books):
    pages = accounting_pages(app)
    assert {ENTRIES, "/admin/accounting_account/", "/admin/accounting_journal/", SETTINGS} <= set(pages)
    office = staff(app)
    for page in pages:
        response = office.get(page)
        # A form that cannot be filled yet (a SEPA batch without the creditor id) sends back with its reason.
        moved = response.status_code == 302 and "/login" not in response.headers["Location"]
        assert response.status_code == 200 or moved, (page, response.status_code)
    admin = staff(app, "admin@dealer.example")
    assert admin.get(ENTRIES).status_code == 200
    technician = staff(app, "tech@dealer.example")
    limiter.reset()
    customer = app.test_client()
    assert login(customer, "anna@bianchi.example", url="/portal/login").status_code == 302
    for page in pages:
        assert technician.get(page).status_code == 403, page
        assert customer.get(page).status_code == 403, page
    stranger = app.test_client()
    for page in pages:
        assert stranger.get(page).status_code == 302, page


def test_the_entries_list_and_an_invoices_entry_name_their_documents_and_accounts(app, books):
    office = staff(app)
    listed = office.get(ENTRIES).get_data(as_text=True)
    rows = text_of(listed, "//table")
    assert "VEN/2026/0001" in rows and "BNK/2026/0001" in rows
    with app.app_context():
        sales = db.session.scalar(sa.select(Entry).where(Entry.source == "invoice", Entry.source_id == books["paid"]))
        sales_id, invoice_number = sales.id, sales.reference
    page = office.get(f"{ENTRIES}details/?id={sales_id}").get_data(as_text=True)
    lines = text_of(page, "//table[@id='entry-lines']")
    assert "1501 Customer receivables" in lines and "Studio Legale Bianchi" in lines
    assert "€183.00" in lines and "5801" in lines and "5802" in lines
    tree = lxml.html.fromstring(page)
    assert tree.xpath(f"//table[@id='entry-lines']//a[contains(., '{invoice_number}')]/@href")
    # A document's entry is undone from the document, not from here.
    assert not tree.xpath("//form[@id='reverse-entry']")
    assert f"Invoice {invoice_number}" in text_of(page, "//dd | //td")


def test_a_manual_entry_from_the_form_refused_when_unbalanced_then_posted_and_reversed(app, books):
    office = staff(app)
    form = {
        "journal": "VAR",
        "date": "2026-11-20",
        "reference": "Ricevuta 45/2026",
        "account-0": "4202",
        "label-0": "Affitto ufficio",
        "debit-0": "500,00",
        "account-1": chart.CASH,
        "credit-1": "499,99",
        "rows": "4",
    }
    refused = post_form(office, f"{ENTRIES}new/", form)
    assert refused.status_code == 200
    html = refused.get_data(as_text=True)
    assert "Debits (500.00) and credits (499.99) differ." in text_of(html, "//*[@id='lines-error']")
    assert 'value="Ricevuta 45/2026"' in html  # what was typed stays in the form
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Entry).where(Entry.source == "manual")) == 0
    posted = post_form(office, f"{ENTRIES}new/", {**form, "credit-1": "500,00"})
    assert posted.status_code == 302
    page = office.get(posted.headers["Location"]).get_data(as_text=True)
    assert "VAR/2026/0001" in page and "4202 Rents and leases paid" in text_of(page, "//table[@id='entry-lines']")
    with app.app_context():
        entry = db.session.scalar(sa.select(Entry).where(Entry.number == "VAR/2026/0001"))
        entry_id = entry.id
    reversed_ = post_form(
        office, f"{ENTRIES}reverse/?id={entry_id}", {"date": "2026-11-25"}, form_url=f"{ENTRIES}details/?id={entry_id}"
    )
    assert reversed_.status_code == 302
    after = office.get(f"{ENTRIES}details/?id={entry_id}").get_data(as_text=True)
    assert "VAR/2026/0002" in text_of(after, "//*[@id='entry-reversed']")
    assert not lxml.html.fromstring(after).xpath("//form[@id='reverse-entry']")


def test_an_account_added_to_the_chart_from_its_form_and_a_code_in_use_refused(app, books):
    office = staff(app)
    with app.app_context():
        group_id = db.session.scalar(sa.select(Account.id).where(Account.code == "5800"))
    form = {"code": "5806", "name_it": "Ricavi assistenza", "type": "income", "parent": str(group_id), "postable": "y"}
    made = post_form(office, "/admin/accounting_account/new/", form)
    assert made.status_code == 302
    with app.app_context():
        account = db.session.scalar(sa.select(Account).where(Account.code == "5806"))
        assert account.parent.code == "5800" and account.name_es == "Ricavi assistenza" and account.postable
    again = post_form(office, "/admin/accounting_account/new/", {**form, "name_it": "Doppio"})
    assert again.status_code == 200
    assert lxml.html.fromstring(again.get_data(as_text=True)).xpath(
        "//input[@id='code'][contains(@class, 'is-invalid')]"
    )
    with app.app_context():
        assert db.session.scalar(sa.select(Account.name_it).where(Account.code == "5806")) == "Ricavi assistenza"


def test_the_settings_are_saved_and_a_wrong_value_is_refused_under_its_field(app, books):
    office = staff(app)
    page = office.get(SETTINGS).get_data(as_text=True)
    assert 'value="7, 21, 45"' in page
    form = {
        "income.fee": "5801",
        "income.overage": "5805",
        "lock_date": "2026-10-31",
        "vat_periodicity": "quarterly",
        "dunning_steps": "10, 30",
    }
    assert post_form(office, SETTINGS, form).status_code == 302
    with app.app_context():
        assert settings.lock_date() == dt.date(2026, 10, 31) and settings.vat_periodicity() == "quarterly"
        assert settings.dunning_steps() == [10, 30] and settings.income_account_code("overage") == "5805"
    refused = post_form(office, SETTINGS, {**form, "dunning_steps": "ten", "lock_date": "2026-11-30"})
    assert refused.status_code == 200
    html = refused.get_data(as_text=True)
    assert "between 1 and 365" in text_of(html, "//*[@id='dunning_steps-error']")
    with app.app_context():
        assert settings.lock_date() == dt.date(2026, 10, 31)  # nothing saved when one field is wrong


def test_the_dashboard_and_the_customers_page_show_what_is_owed(app, books):
    office = staff(app)
    dashboard = office.get("/admin/").get_data(as_text=True)
    cards = text_of(dashboard, "//*[contains(@class, 'card')]")
    # Bianchi owes 183.00 - 100.00 of a September invoice, Rossi 97.60 due in November: both overdue by now.
    assert "Receivables open €180.60" in cards and "Receivables overdue €180.60" in cards
    page = office.get(f"/admin/core_partner/details/?id={books['rossi']}").get_data(as_text=True)
    panel = text_of(page, "//*[@data-panel][contains(., 'Partner ledger')]")
    assert "€97.60" in panel and "Partner ledger of Farmacia Rossi" in panel


def test_the_entries_list_of_more_rows_sends_no_more_queries(app, books):
    from tests.query_counter import assert_not_growing, count_queries

    def add(count: int) -> None:
        with app.app_context():
            customer = db.session.get(Partner, books["rossi"])
            for _ in range(count):
                invoice = make_posted_invoice(customer, [("fee", "10.00", "22")], dt.date(2026, 11, 10))
                payments.record_payment(customer.id, invoice.total, dt.date(2026, 11, 12), invoice_id=invoice.id)
                db.session.commit()

    office = staff(app)
    add(1)
    with count_queries(app) as few:
        assert office.get(ENTRIES).status_code == 200
    add(3)
    with count_queries(app) as many:
        page = office.get(ENTRIES).get_data(as_text=True)
    assert page.count("BNK/2026/") == 5  # the fixture's payment and four more, each with its document
    assert_not_growing(few, many)
