"""The payment state where people read it: invoicing's back-office list and page, the customer's portal list; and
the payments pages: record a payment (a refusal names the field), a customer's open items, match and undo."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.models import Partner
from modules.accounting import payments
from modules.accounting.models import EntryLine, Match, Payment
from modules.accounting.tests.support import make_company, make_customer, make_posted_invoice
from tests.auth_support import csrf_token, login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries

PAYMENTS = "/admin/accounting_payments"
INVOICES = "/admin/invoicing_invoices_admin"


@pytest.fixture
def books(app):
    """Bianchi with an overdue, a paid and a partly paid invoice; staff and Bianchi's administrator logged in.

    Built in an app context of its own: requests of two clients in one shared context would share the logged-in user.
    """
    with app.app_context():
        make_company()
        customer = make_customer(language="en")
        unpaid = make_posted_invoice(customer, issue_date=dt.date(2026, 1, 10))  # 122.00 each; long overdue
        paid = make_posted_invoice(customer)
        partial = make_posted_invoice(customer)
        payments.record_payment(customer.id, Decimal("122.00"), dt.date(2026, 11, 20), invoice_id=paid.id)
        payments.record_payment(customer.id, Decimal("22.00"), dt.date(2026, 11, 20), invoice_id=partial.id)
        db.session.commit()
        make_user("office@dealer.example", "back_office", language="en")
        make_user("anna@bianchi.example", "customer_admin", customer_id=customer.id, language="en")
        ids = {"customer": customer.id, "paid": paid.id, "partial": partial.id, "unpaid": unpaid.id}
        numbers = {key: document.number for key, document in (("paid", paid), ("partial", partial), ("unpaid", unpaid))}
        db.session.remove()
    staff, portal = app.test_client(), app.test_client()
    assert login(staff, "office@dealer.example").status_code == 302
    assert login(portal, "anna@bianchi.example", url="/portal/login").status_code == 302
    return {"app": app, "staff": staff, "portal": portal, "id": ids, "number": numbers}


def row_of(page: str, number: str) -> str:
    """The table row naming document `number`."""
    for row in re.findall(r"<tr.*?</tr>", page, flags=re.S):
        if re.search(rf">(Invoice )?{re.escape(number)}<", row):
            return row
    raise AssertionError(f"no row for {number}")


def test_back_office_invoice_list_shows_state_and_amount_due(books):
    page = books["staff"].get(f"{INVOICES}/").get_data(as_text=True)

    assert "Payment" in page and "Amount due" in page
    assert 'data-payment-state="paid">Paid<' in row_of(page, books["number"]["paid"])
    partial = row_of(page, books["number"]["partial"])
    assert "100.00" in partial and ('data-payment-state="partial"' in partial or "overdue" in partial)
    unpaid = row_of(page, books["number"]["unpaid"])
    assert 'data-payment-state="overdue">Overdue<' in unpaid and "122.00" in unpaid


def test_back_office_invoice_page_shows_state_and_amount_due(books):
    page = books["staff"].get(f"{INVOICES}/{books['id']['unpaid']}").get_data(as_text=True)
    assert re.search(r"Payment: <strong>Overdue</strong> · Amount due: €122\.00", page)
    paid = books["staff"].get(f"{INVOICES}/{books['id']['paid']}").get_data(as_text=True)
    assert "Payment: <strong>Paid</strong> · Amount due: €0.00" in paid


def test_portal_lists_each_invoice_with_its_state_and_what_is_left_to_pay(books):
    page = books["portal"].get("/portal/invoices/").get_data(as_text=True)

    assert 'data-status="paid">Paid<' in row_of(page, books["number"]["paid"])
    assert "€100.00 to pay" in row_of(page, books["number"]["partial"])
    unpaid = row_of(page, books["number"]["unpaid"])
    assert 'data-status="overdue">Overdue · €122.00 to pay' in unpaid


def test_recording_a_payment_from_the_form_pays_the_invoice_typed(books):
    staff = books["staff"]
    token = csrf_token(staff, f"{PAYMENTS}/new")
    form = {
        "csrf_token": token,
        "partner_id": str(books["id"]["customer"]),
        "amount": "122,00",
        "date": "2026-11-25",
        "method": "bank_transfer",
        "journal": "BNK",
        "invoice": books["number"]["unpaid"],
        "reference": "CRO 1234",
    }
    done = staff.post(f"{PAYMENTS}/new", data=form)

    assert done.status_code == 302 and done.headers["Location"].endswith(f"/open-items/{books['id']['customer']}")
    page = staff.get(f"{INVOICES}/{books['id']['unpaid']}").get_data(as_text=True)
    assert "Payment: <strong>Paid</strong>" in page
    listed = staff.get(f"{PAYMENTS}/").get_data(as_text=True)
    assert "CRO 1234" in listed and "Studio Legale Bianchi" in listed and books["number"]["unpaid"] in listed


def test_a_payment_larger_than_due_is_refused_on_the_form_beside_the_amount(books):
    staff = books["staff"]
    form = {
        "csrf_token": csrf_token(staff, f"{PAYMENTS}/new"),
        "partner_id": str(books["id"]["customer"]),
        "amount": "1000",
        "date": "2026-11-25",
        "method": "bank_transfer",
        "invoice": books["number"]["unpaid"],
    }
    page = staff.post(f"{PAYMENTS}/new", data=form).get_data(as_text=True)

    assert 'id="amount-error"' in page and "more than the €122.00 due" in page
    with books["app"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 2


def test_open_items_page_matches_a_credit_with_an_invoice_and_undoes_it(books):
    staff, customer_id = books["staff"], books["id"]["customer"]
    with books["app"].app_context():
        advance = payments.record_payment(customer_id, Decimal("50.00"), dt.date(2026, 11, 21), reference="acconto")
        db.session.commit()
        credit_line_id = next(line.id for line in advance.entry.lines if line.credit > 0)
    url = f"{PAYMENTS}/open-items/{customer_id}"
    page = staff.get(url).get_data(as_text=True)
    assert "Open items of Studio Legale Bianchi" in page
    assert books["number"]["unpaid"] in page and books["number"]["partial"] in page and "acconto" in page
    debit_id = re.search(r'name="debit_line_id" value="(\d+)" id="debit-\d+"', page).group(1)

    matched = staff.post(
        f"{url}/match",
        data={
            "csrf_token": csrf_token(staff, url),
            "debit_line_id": debit_id,
            "credit_line_id": str(credit_line_id),
            "amount": "30",
        },
    )
    assert matched.status_code == 302
    with books["app"].app_context():
        match = db.session.scalars(sa.select(Match).where(Match.credit_line_id == credit_line_id)).one()
        assert match.amount == Decimal("30.00") and not match.auto
        match_id = match.id
    page = staff.get(url).get_data(as_text=True)
    assert "by hand" in page and "€30.00" in page

    undone = staff.post(f"{PAYMENTS}/matches/{match_id}/undo", data={"csrf_token": csrf_token(staff, url)})
    assert undone.status_code == 302
    with books["app"].app_context():
        assert db.session.get(Match, match_id) is None


def test_payments_pages_are_for_staff_with_billing_rights(books):
    assert books["portal"].get(f"{PAYMENTS}/").status_code in (302, 403)
    assert books["staff"].get(f"{PAYMENTS}/open-items/").status_code == 200


def test_lists_ask_the_payment_states_once_per_page_not_per_row(books):
    """The back-office invoice list, the portal's list, the API's list and the payments list cost the same number of
    statements with three times the invoices and payments."""
    app = books["app"]
    api = {"Authorization": "Bearer " + _token(app)}

    def add_paid_invoices(count: int) -> None:
        with app.app_context():
            customer = db.session.get(Partner, books["id"]["customer"])
            for _ in range(count):
                invoice = make_posted_invoice(customer)
                payments.record_payment(customer.id, Decimal("50.00"), dt.date(2026, 11, 20), invoice_id=invoice.id)
            db.session.commit()

    def measure() -> list[Queries]:
        counted = []
        for client, url, headers in (
            (books["staff"], f"{INVOICES}/", {}),
            (books["portal"], "/portal/invoices/", {}),
            (app.test_client(), "/api/v1/invoices", api),
            (books["staff"], f"{PAYMENTS}/", {}),
            (books["staff"], f"{PAYMENTS}/open-items/{books['id']['customer']}", {}),
        ):
            with count_queries(app) as queries:
                assert client.get(url, headers=headers).status_code == 200
            counted.append(queries)
        return counted

    add_paid_invoices(2)
    few = measure()
    add_paid_invoices(6)
    many = measure()
    for before, after in zip(few, many, strict=True):
        assert_not_growing(before, after)


def _token(app) -> str:
    with app.app_context():
        from core.api.tokens import create_token
        from core.models import User

        office = db.session.scalar(sa.select(User).where(User.email == "office@dealer.example"))
        _row, plaintext = create_token(office, "tests")
        db.session.commit()
        return plaintext


def test_a_cancelled_payment_leaves_no_undo_and_the_cancel_goes_back_to_the_payments(books):
    staff, customer_id, app = books["staff"], books["id"]["customer"], books["app"]
    with app.app_context():
        payment = payments.record_payment(
            customer_id, Decimal("10.00"), dt.date(2026, 11, 21), method="riba", reference="ricevuta 7"
        )
        db.session.commit()
        payment_id = payment.id
    listing = staff.get(f"{PAYMENTS}/").get_data(as_text=True)
    assert "RiBa (bank receipt)" in row_of(listing.replace("ricevuta 7", ">ricevuta 7<"), "ricevuta 7")

    cancelled = staff.post(
        f"{PAYMENTS}/{payment_id}/cancel",
        data={"csrf_token": csrf_token(staff, f"{PAYMENTS}/"), "next": "https://evil.example/phish"},
    )
    assert cancelled.status_code == 302
    assert cancelled.headers["Location"].rstrip("/").endswith(PAYMENTS), "no redirect to a form's address"

    url = f"{PAYMENTS}/open-items/{customer_id}"
    page = staff.get(url).get_data(as_text=True)
    with app.app_context():
        reversal_matches = db.session.scalars(
            sa.select(Match.id)
            .join(EntryLine, EntryLine.id == Match.debit_line_id)
            .where(EntryLine.invoice_id.is_(None))
        ).all()
        assert reversal_matches
    for match_id in reversal_matches:
        assert f"/matches/{match_id}/undo" not in page  # its documents made it: nothing to undo
