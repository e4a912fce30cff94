"""The back office says what became of an invoice's email: kept in the outbox is not "sent" nor a bare code."""

from __future__ import annotations

from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run
from tests.api_support import bearer
from tests.auth_support import login, make_user


def test_invoice_email_held_without_a_mail_server_says_kept_in_the_outbox_and_why(app):
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        new_contract(client, staff, billing_customer("Alfa").id, "M1")
        invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
        assert client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff).status_code == 200
        make_user("office@rossi.example", "back_office")
    office = app.test_client()
    login(office, "office@rossi.example")

    details = office.get(f"/admin/invoicing_invoices_admin/{invoice_id}").get_data(as_text=True)
    listing = office.get("/admin/invoicing_invoices_admin/").get_data(as_text=True)

    for page in (details, listing):
        assert "kept in the outbox: no mail server is configured" in page
        assert "<td>kept</td>" not in page and "Email: kept (" not in page
