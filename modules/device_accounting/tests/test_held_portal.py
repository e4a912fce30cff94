""" "My print jobs" with held jobs: a portal user sees the held jobs of their own print user waiting for release, in
their language, deletes one (its document goes with it), chooses the colleagues who may release them; another user's
or another customer's held job answers 404 and nothing changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import lxml.html
import pytest
import sqlalchemy as sa
from flask_babel import force_locale, ngettext

from core.db import db, utcnow
from modules.device_accounting import held_jobs, print_servers
from modules.device_accounting.demo import demo_pdf
from modules.device_accounting.models import HeldDocument, HeldJob, PrintDelegate, PrintServer
from modules.device_accounting.tests import portal_support as p

URL = "/portal/print/my/"

pytestmark = pytest.mark.usefixtures("portal_now")


@dataclass
class Jobs:
    mine: int
    mine_later: int
    expired: int
    colleague: int
    theirs: int


def _hold(customer_id: int, username: str, title: str, pages: int = 2, **options) -> int:
    server = db.session.scalar(sa.select(PrintServer).where(PrintServer.customer_id == customer_id))
    if server is None:
        server, _token = print_servers.create_print_server(customer_id, "CUPS")
    job, _new = held_jobs.submit_held_job(server, username, demo_pdf(pages, title), title=title, **options)
    return job.id


@pytest.fixture
def held(app, portal_companies):
    """Mario's two waiting jobs and one past its expiry, his colleague Luisa's, and the other customer's Mario's."""
    ours, theirs = portal_companies
    with app.app_context():
        jobs = Jobs(
            mine=_hold(ours.customer, "mrossi", "Contratto Rossi.pdf", pages=3, copies=2),
            mine_later=_hold(
                ours.customer, "mrossi", "Preventivo.pdf", color=True, now=utcnow() - dt.timedelta(hours=1)
            ),
            expired=_hold(ours.customer, "mrossi", "Vecchio.pdf", now=utcnow() - dt.timedelta(hours=5)),
            colleague=_hold(ours.customer, "lverdi", "Lettera di Luisa.pdf"),
            theirs=_hold(theirs.customer, "mrossi", "Factura.pdf"),
        )
        db.session.commit()
        return jobs


def _title(row: lxml.html.HtmlElement) -> str:
    return row.xpath("string(.//*[@class='document'])").strip()


def _rows(html: str) -> list[lxml.html.HtmlElement]:
    return lxml.html.fromstring(html).xpath("//table[contains(@class, 'held-jobs')]//tr[@data-held]")


def test_my_held_jobs_are_listed_in_italian_with_labelled_cells(app, portal_companies, held):
    ours, _theirs = portal_companies
    html = p.portal_client(app, ours.colleague).get(URL).get_data(as_text=True)
    rows = _rows(html)
    # The two waiting: not the expired one, not Luisa's, not the other customer's; the soonest to expire first.
    assert [_title(row) for row in rows] == [
        "Preventivo.pdf",
        "Contratto Rossi.pdf",
    ]
    labels = {cell.get("data-label") for cell in rows[0].xpath("td")}
    for header in ("Document", "Sent", "Pages", "Expires", "Estimated cost", "Delete"):
        assert p.translated(app, "it", header) in labels, header
    text = p.text(p.portal_client(app, ours.colleague).get(URL))
    assert "Lettera di Luisa.pdf" not in text and "Factura.pdf" not in text and "Vecchio.pdf" not in text
    # Sent at 10:30 in Rome (09:30 UTC), kept 4 hours: expires at 14:30 on 18/03/26.
    assert "18/03/26, 14:30 CET" in text
    with app.test_request_context(), force_locale("it"):
        assert ngettext("%(num)d copy", "%(num)d copies", 2) in text


def test_the_other_customers_user_reads_their_own_held_job_in_spanish(app, portal_companies, held):
    _ours, theirs = portal_companies
    response = p.portal_client(app, theirs.colleague).get(URL)
    text = p.text(response)
    assert '<html lang="es">' in text and "Factura.pdf" in text and "Contratto Rossi.pdf" not in text
    assert "18/3/26, 14:30 CET" in text


def test_deleting_my_held_job_removes_it_and_its_document(app, portal_companies, held):
    ours, _theirs = portal_companies
    client = p.portal_client(app, ours.colleague)
    response = p.post(client, f"/portal/print/my/held/{held.mine}/delete", {}, URL, follow_redirects=True)
    assert response.status_code == 200
    assert [_title(row) for row in _rows(response.get_data(as_text=True))] == ["Preventivo.pdf"]
    assert "Contratto Rossi.pdf" in p.text(response)  # the flash names what was deleted
    with app.app_context():
        assert db.session.get(HeldJob, held.mine).state == "deleted"
        assert db.session.get(HeldDocument, held.mine) is None
        assert db.session.get(HeldDocument, held.mine_later) is not None


@pytest.mark.parametrize("whose", ["colleague", "theirs"])
def test_someone_elses_held_job_is_404_and_stays_held(app, portal_companies, held, whose):
    ours, _theirs = portal_companies
    client = p.portal_client(app, ours.colleague)
    job_id = getattr(held, whose)
    response = p.post(client, f"/portal/print/my/held/{job_id}/delete", {}, URL)
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(HeldJob, job_id).state == "held"
        assert db.session.get(HeldDocument, job_id) is not None


def test_i_choose_who_may_release_my_held_jobs(app, portal_companies, held):
    ours, theirs = portal_companies
    client = p.portal_client(app, ours.colleague)
    form = lxml.html.fromstring(client.get(URL).get_data(as_text=True)).xpath("//form[@id='delegates']")[0]
    offered = {box.get("value") for box in form.xpath(".//input[@name='delegate']")}
    assert offered == {str(ours.other_print_user)}  # Luisa; not Mario himself, not the other customer's people
    p.post(client, "/portal/print/my/delegates", {"delegate": str(ours.other_print_user)}, URL)
    with app.app_context():
        rows = db.session.execute(sa.select(PrintDelegate.owner_id, PrintDelegate.delegate_id)).all()
        assert rows == [(ours.print_user, ours.other_print_user)]
    page = lxml.html.fromstring(client.get(URL).get_data(as_text=True))
    assert page.xpath(f"//input[@name='delegate' and @value='{ours.other_print_user}' and @checked]")

    # Someone of another customer is refused and the choice stays as it was.
    refused = p.post(
        client, "/portal/print/my/delegates", {"delegate": str(theirs.print_user)}, URL, follow_redirects=True
    )
    assert 'class="notice error"' in refused.get_data(as_text=True)
    with app.app_context():
        rows = db.session.execute(sa.select(PrintDelegate.owner_id, PrintDelegate.delegate_id)).all()
        assert rows == [(ours.print_user, ours.other_print_user)]

    # Nobody ticked: nobody else may release them.
    p.post(client, "/portal/print/my/delegates", {}, URL)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PrintDelegate)) == 0
