"""Posting a run's drafts gives them final numbers: first a confirmation naming how many and which numbers."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run
from tests.api_support import bearer
from tests.auth_support import login, make_user, post_form


def run_with_two_drafts(app) -> tuple[int, list[str], object]:
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        for name, serial in (("Alfa", "P1"), ("Beta", "P2")):
            new_contract(client, staff, billing_customer(name).id, serial)
        run = start_run(client, staff, "2026-01-05")
        make_user("office@rossi.example", "back_office")
    office = app.test_client()
    login(office, "office@rossi.example")
    return run["id"], [str(invoice_id) for invoice_id in run["invoice_ids"]], office


def run_states(app, run_id: int) -> list[str]:
    with app.app_context():
        query = sa.select(Invoice.state).where(Invoice.billing_run_id == run_id).order_by(Invoice.id)
        return list(db.session.scalars(query))


def test_post_all_drafts_first_asks_to_confirm_how_many_and_which_numbers_and_posts_nothing(app):
    run_id, ids, office = run_with_two_drafts(app)
    url = f"/admin/invoicing_runs_admin/{run_id}"

    asked = post_form(office, f"{url}/post", {"all": "1"}, form_url=url)
    unticked = post_form(office, f"{url}/post", {"asked": "1", "invoice_id": ids}, form_url=url)

    page = asked.get_data(as_text=True)
    assert asked.status_code == 200
    assert "2 drafts will be posted" in page and "1/2026" in page and "2/2026" in page
    assert 'name="confirm"' in page
    assert "Tick the box to confirm" in unticked.get_data(as_text=True)
    assert run_states(app, run_id) == ["draft", "draft"]


def test_confirmed_posting_numbers_the_drafts_and_the_post_buttons_go_away(app):
    run_id, ids, office = run_with_two_drafts(app)
    url = f"/admin/invoicing_runs_admin/{run_id}"
    before = office.get(url).get_data(as_text=True)

    confirm_page = post_form(office, f"{url}/post", {"all": "1"}, form_url=url).get_data(as_text=True)
    posted = post_form(office, f"{url}/post", {"invoice_id": ids, "confirm": "1"}, form_url=url, follow_redirects=True)

    assert "Post all drafts" in before
    assert all(f'name="invoice_id" value="{invoice_id}"' in confirm_page for invoice_id in ids)
    assert run_states(app, run_id) == ["posted", "posted"]
    after = posted.get_data(as_text=True)
    assert "1/2026, 2/2026" in after
    assert "Post all drafts" not in after and "Post selected" not in after
