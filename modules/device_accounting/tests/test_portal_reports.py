"""The customer admin's reports and jobs in the portal: charts and tables for a date range in the dealer's days, CSV
and PDF downloads, the monthly email opt-in, and refunds that raise the balance, never beyond the job's cost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting import pricing, quotas
from modules.device_accounting.models import Quota, Refund, ReportSubscription, Transaction
from modules.device_accounting.tests import portal_support as p

MARCH = "since=2026-03-01&until=2026-03-31"


pytestmark = pytest.mark.usefixtures("portal_now")


def test_report_shows_charts_and_the_table_of_the_chosen_grouping(app, portal_bianchi, portal_admin):
    page = p.text(portal_admin.get(f"/portal/print/reports/?{MARCH}&group_by=user"))
    assert 'data-chart="trend"' in page and 'type="application/json"' in page  # da-reports' charts partial
    assert "Mario Rossi" in page and "Luisa Verdi" in page
    assert "3,50\xa0€" in page  # Luisa's one job, in Italian money
    by_center = p.text(portal_admin.get(f"/portal/print/reports/?{MARCH}&group_by=cost_center"))
    assert "Amministrazione / Contabilità" in by_center
    # Only Mario's jobs when filtered on him.
    mine = p.text(portal_admin.get(f"/portal/print/reports/?{MARCH}&group_by=user&user_id={portal_bianchi.print_user}"))
    table = mine[mine.index("da-usage-table") :].split("</table>", 1)[0]
    assert "Mario Rossi" in table and "Luisa Verdi" not in table


def test_bad_dates_are_refused_beside_their_field(app, portal_bianchi, portal_admin):
    response = portal_admin.get("/portal/print/reports/?since=2026-03-31&until=2026-03-01")
    assert response.status_code == 422
    assert 'id="r-until-error"' in p.text(response)
    response = portal_admin.get("/portal/print/reports/?since=31/03/2026")
    assert response.status_code == 422 and "31/03/2026" in p.text(response)


def test_csv_and_pdf_downloads_carry_the_same_report(app, portal_bianchi, portal_admin):
    csv = portal_admin.get(f"/portal/print/reports/usage.csv?{MARCH}&group_by=user")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "attachment" in csv.headers["Content-Disposition"]
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[1:] == ["Luisa Verdi,1,100,0,100,3.5000", "Mario Rossi,3,12,4,16,0.9850"]
    pdf = portal_admin.get(f"/portal/print/reports/usage.pdf?{MARCH}&group_by=cost_center")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")


def test_monthly_email_opt_in_and_out(app, portal_bianchi, portal_admin):
    assert p.post(portal_admin, "/portal/print/reports/subscription", {"subscribe": "1"}).status_code == 302
    with app.app_context():
        subscription = db.session.scalar(sa.select(ReportSubscription))
        assert subscription.customer_id == portal_bianchi.customer and subscription.user.email == portal_bianchi.admin
    assert 'name="subscribe" value="0"' in p.text(portal_admin.get("/portal/print/reports/"))
    assert p.post(portal_admin, "/portal/print/reports/subscription", {"subscribe": "0"}).status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportSubscription)) == 0


def test_jobs_are_listed_by_the_dealers_days(app, portal_bianchi, portal_admin):
    # The copy ended at 23:30 UTC on 17 March: 00:30 on the 18th in Rome, so it is a job of the 18th.
    page = p.text(portal_admin.get("/portal/print/transactions/?since=2026-03-18&until=2026-03-18"))
    assert page.count("data-job=") == 1 and "18/03/26, 00:30 CET" in page
    assert (
        p.text(portal_admin.get("/portal/print/transactions/?since=2026-03-17&until=2026-03-17")).count("data-job=")
        == 0
    )
    mario = p.text(portal_admin.get(f"/portal/print/transactions/?{MARCH}&user={portal_bianchi.print_user}"))
    assert mario.count("data-job=") == 3


def charged_job(app, portal_bianchi, cost_per_side: str = "0.25") -> int:
    """A job recorded as a device sends it: priced by the dealer's list and charged to Mario's quota."""
    with app.app_context():
        entries = [
            {"function": function, "colour": colour, "price_per_side": Decimal(cost_per_side)}
            for function in ("print", "copy")
            for colour in ("bw", "color")
        ]
        pricing.save_price_list(None, {"name": "Listino", "valid_from": dt.date(2026, 1, 1), "entries": entries})
        from modules.device_accounting import operations

        tx, created = operations.record_transaction(
            {
                "device_id": portal_bianchi.device,
                "device_seq": 9001,
                "user_id": portal_bianchi.print_user,
                "function": "print",
                "sides_bw": 8,
                "paper_size": "A4",
                "started_at": "2026-03-18T08:00:00Z",
                "ended_at": "2026-03-18T08:01:00Z",
            }
        )
        db.session.commit()
        assert created and tx.cost == Decimal("2.0000")
        return tx.id


def balance_of(app, user_id: int) -> Decimal:
    with app.app_context():
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user_id))
        return quotas.current_balance(quota).balance


def test_refund_raises_the_balance_and_never_goes_beyond_the_cost(app, portal_bianchi, portal_admin):
    job = charged_job(app, portal_bianchi)
    assert balance_of(app, portal_bianchi.print_user) == Decimal("18")
    url = f"/portal/print/transactions/{job}/refund"
    form = p.text(portal_admin.get(url))
    assert 'value="2,00"' in form  # what may be refunded, in Italian
    with app.app_context():
        before = p.counts()
    too_much = p.post(portal_admin, url, {"amount": "2,50", "reason": "Inceppamento"}, form_url=url)
    assert too_much.status_code == 422 and "2,00" in p.field_error(p.text(too_much), "f-amount")
    no_reason = p.post(portal_admin, url, {"amount": "1", "reason": ""}, form_url=url)
    assert no_reason.status_code == 422 and p.field_error(p.text(no_reason), "f-reason")
    with app.app_context():
        assert p.counts() == before and db.session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0

    done = p.post(portal_admin, url, {"amount": "1,50", "reason": "Inceppamento carta"}, form_url=url)
    assert done.status_code == 302
    assert balance_of(app, portal_bianchi.print_user) == Decimal("19.5")
    with app.app_context():
        refund = db.session.scalar(sa.select(Refund))
        assert (refund.amount, refund.reason, refund.actor.email) == (
            Decimal("1.5"),
            "Inceppamento carta",
            portal_bianchi.admin,
        )
        assert db.session.get(Transaction, job).refunded == Decimal("1.5")
    page = p.text(portal_admin.get(url))
    assert "Inceppamento carta" in page and 'value="0,50"' in page
    assert p.post(portal_admin, url, {"amount": "0,50", "reason": "Resto"}, form_url=url).status_code == 302
    listed = p.text(portal_admin.get("/portal/print/transactions/?since=2026-03-18&until=2026-03-18"))
    row = listed[listed.index('data-job="9001"') :].split("</tr>", 1)[0]
    assert "/refund" not in row  # refunded in full: no more refund link
