"""Device accounting on the other back-office pages: a device's last jobs (linked to the list of its jobs), a
customer's print users, cost centers and this month's usage, the dashboard's cards, and the reports page."""

from __future__ import annotations

import lxml.html
import sqlalchemy as sa

from core import clock
from core.db import db
from modules.device_accounting.models import Balance
from modules.device_accounting.tests import admin_support as s

JOBS = "/admin/device_accounting_transaction/"


def _panel(html: str, href_part: str):
    """The record panel holding a link whose address contains `href_part`."""
    panels = lxml.html.fromstring(html).xpath(f"//*[@data-panel][.//a[contains(@href, '{href_part}')]]")
    assert panels, href_part
    return panels[0]


def _hrefs(panel) -> list[tuple[str, str]]:
    return [(" ".join(a.text_content().split()), a.get("href")) for a in panel.xpath(".//a")]


def _today(app):
    with app.app_context():
        return clock.today()


def test_a_device_page_shows_its_last_jobs_linked_to_the_list_of_its_jobs(app, office):
    client = s.staff(app, "technician")
    page = client.get(f"/admin/rentals_device/details/?id={office.device_id}").get_data(as_text=True)
    links = _hrefs(_panel(page, "device_accounting_transaction/details"))
    assert len([href for _text, href in links if "device_accounting_transaction/details" in href]) == 2
    everything = next(href for text, href in links if "KY-A1" in text)
    assert f"device_id={office.device_id}" in everything
    text = s.text_of(client.get(everything).get_data(as_text=True))
    assert "Mario Rossi (mrossi)" in text and "Lucia Verdi" not in text  # only this device's jobs
    assert "Lucia Verdi" in s.text_of(client.get(JOBS).get_data(as_text=True))


def test_a_customer_page_shows_its_print_users_cost_centers_and_this_months_usage(app, office):
    client = s.staff(app, "back_office")
    page = client.get(f"/admin/core_partner/details/?id={office.customer_id}").get_data(as_text=True)
    users = {text for text, _href in _hrefs(_panel(page, "device_accounting_user/details"))}
    assert {"Mario Rossi (mrossi)", "Lucia Verdi (lverdi)"} <= users
    centers = {text for text, _href in _hrefs(_panel(page, "device_accounting_cost_center/details"))}
    assert "Amministrazione / Contabilità" in centers
    usage = _panel(page, "device_accounting_usage")
    assert "0,35" in s.text_of(lxml.html.tostring(usage).decode())  # 0.10 + 0.22 + 0.03 this month
    jobs = next(href for _text, href in _hrefs(usage) if "device_accounting_transaction" in href)
    assert "Lucia Verdi" in s.text_of(client.get(jobs).get_data(as_text=True))


def test_the_dashboard_counts_todays_jobs_and_the_users_over_quota(app, office):
    client = s.staff(app, "back_office")
    with app.app_context():
        balance = db.session.scalar(sa.select(Balance).where(Balance.quota_id == office.quota_id))
        balance.balance = -1  # spent beyond the quota (an overdraft in use)
        db.session.commit()
    tree = lxml.html.fromstring(client.get("/admin/").get_data(as_text=True))
    today = tree.xpath("//a[contains(@href, 'device_accounting_transaction') and contains(@href, 'since=')]")
    assert today and f"since={_today(app).isoformat()}" in today[0].get("href")
    card = today[0].xpath("ancestor-or-self::*[contains(@class, 'card')][1]")[0]
    assert "3" in s.text_of(lxml.html.tostring(card).decode())
    assert s.text_of(client.get(today[0].get("href")).get_data(as_text=True)).count("KY-") >= 3
    over = tree.xpath("//a[contains(@href, 'device_accounting_quota') and contains(@href, 'over=1')]")
    assert over
    listed = s.text_of(client.get(over[0].get("href")).get_data(as_text=True))
    assert "Mario Rossi (mrossi)" in listed and "Lucia Verdi" not in listed


def test_the_reports_page_shows_charts_and_a_table_and_downloads_csv_and_pdf(app, office):
    client = s.staff(app, "back_office")
    today = _today(app)
    base = f"/admin/device_accounting_usage/?customer_id={office.customer_id}"
    page = client.get(f"{base}&group_by=user&since={today.replace(day=1)}&until={today}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "data-da-charts" in html and "da-usage-table" in html
    text = s.text_of(html)
    assert "Mario Rossi" in text and "Lucia Verdi" in text
    tree = lxml.html.fromstring(html)
    csv = client.get(tree.xpath("//a[contains(@href, 'usage.csv')]/@href")[0])
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "Mario Rossi" in csv.get_data(as_text=True)
    pdf = client.get(tree.xpath("//a[contains(@href, 'usage.pdf')]/@href")[0])
    assert pdf.status_code == 200 and pdf.get_data()[:4] == b"%PDF"
    assert client.get(f"{base}&since={today}&until=2020-01-01").status_code == 422
