"""Held print jobs and print servers in the back office: the list and page in Italian with their labels, staff
deleting a waiting job with its document, a print server's token shown once (only its digest kept), its rotation,
the CUPS user and queue mappings, the held-job hours of the customer's settings, the dashboard and record panels."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

import lxml.html
import pytest
import sqlalchemy as sa

from core import clock
from core.db import db, utcnow
from core.models import AuditLog
from modules.device_accounting import held_jobs, print_servers
from modules.device_accounting.demo import demo_pdf
from modules.device_accounting.models import (
    AccountingSettings,
    HeldDocument,
    HeldJob,
    PrintServer,
    PrintServerPrinter,
    PrintServerUser,
    Transaction,
)
from modules.device_accounting.tests import admin_support as s
from modules.device_accounting.tests.portal_support import translated
from tests.query_counter import assert_not_growing, count_queries

HELD = "/admin/device_accounting_held_job/"
SERVERS = "/admin/device_accounting_print_server/"


@dataclass
class Held:
    server: int
    waiting: int
    other: int
    released: int


@pytest.fixture
def held(app, office):
    """Studio Rossi's print server and three held jobs: Mario's waiting (3 pages), Lucia's waiting, and one of
    Mario's deleted already."""
    with app.app_context():
        server = db.session.get(PrintServer, print_servers.create_print_server(office.customer_id, "CUPS sede")[0].id)
        sent = utcnow() - dt.timedelta(minutes=90)
        waiting, _new = held_jobs.submit_held_job(
            server, "mrossi", demo_pdf(3, "Bilancio"), title="Bilancio 2026.pdf", copies=2, now=sent
        )
        other, _new = held_jobs.submit_held_job(server, "lverdi", demo_pdf(1, "Lettera"), title="Lettera.pdf")
        gone, _new = held_jobs.submit_held_job(server, "mrossi", demo_pdf(1, "Bozza"), title="Bozza.pdf")
        held_jobs.delete_held_job(gone.id, None, staff=True)
        db.session.commit()
        return Held(server.id, waiting.id, other.id, gone.id)


def _page(app, client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, url
    html = response.get_data(as_text=True)
    assert s.raw_codes(app, html) == [], url
    return s.text_of(html)


def test_the_held_jobs_list_and_page_read_in_italian_with_labels(app, office, held):
    client = s.staff(app, "back_office")
    listed = _page(app, client, HELD)
    for header in ("Owner", "Document", "Pages", "Waiting for", "Expires"):
        assert translated(app, "it", header) in listed, header
    assert "Bilancio 2026.pdf" in listed and "Lettera.pdf" in listed and "Studio Rossi" in listed
    assert s.label(app, "held_job.state", "held") in listed and s.label(app, "held_job.state", "deleted") in listed
    # Waiting since 90 minutes ago, said in Italian; the expiry in the dealer's time zone.
    assert re.search(r"\b(1|2) or[ae]\b|90 minuti", listed)
    assert "CET" in listed

    details = _page(app, client, f"{HELD}details/?id={held.waiting}")
    assert "Mario Rossi (mrossi)" in details and "CUPS sede" in details
    tree = lxml.html.fromstring(client.get(f"{HELD}details/?id={held.waiting}").get_data(as_text=True))
    assert tree.xpath("//form[@id='discard-held']")
    # An ended job cannot be deleted again.
    ended = lxml.html.fromstring(client.get(f"{HELD}details/?id={held.released}").get_data(as_text=True))
    assert not ended.xpath("//form[@id='discard-held']")


def test_the_list_narrows_to_a_customer_and_a_state(app, office, held):
    client = s.staff(app, "back_office")
    waiting = _page(app, client, f"{HELD}?customer_id={office.customer_id}&state=held")
    assert "Bilancio 2026.pdf" in waiting and "Lettera.pdf" in waiting and "Bozza.pdf" not in waiting
    mine = _page(app, client, f"{HELD}?user_id={office.user_id}")
    assert "Bilancio 2026.pdf" in mine and "Lettera.pdf" not in mine


def test_staff_delete_a_waiting_job_and_its_document_is_gone(app, office, held):
    client = s.staff(app, "back_office")
    url = f"{HELD}details/?id={held.waiting}"
    response = s.post(client, f"{HELD}discard/?id={held.waiting}", {}, url, follow_redirects=True)
    assert response.status_code == 200
    assert s.label(app, "held_job.state", "deleted") in s.text_of(response.get_data(as_text=True))
    with app.app_context():
        assert db.session.get(HeldJob, held.waiting).state == "deleted"
        assert db.session.get(HeldDocument, held.waiting) is None
        assert db.session.get(HeldDocument, held.other) is not None  # Lucia's job keeps its document


def test_a_technician_may_look_but_not_delete(app, office, held):
    client = s.staff(app, "technician")
    page = client.get(f"{HELD}details/?id={held.waiting}").get_data(as_text=True)
    assert "discard-held" not in page
    response = s.post(client, f"{HELD}discard/?id={held.waiting}", {}, f"{HELD}details/?id={held.waiting}")
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(HeldJob, held.waiting).state == "held"


def _token(html: str) -> str:
    found = lxml.html.fromstring(html).xpath("//code[@id='print-server-token']")
    assert found, html[:2000]
    return found[0].text_content().strip()


def test_a_new_print_server_shows_its_token_once_and_keeps_only_its_digest(app, office):
    client = s.staff(app, "dealer_admin")
    form = _page(app, client, f"{SERVERS}new/")
    assert translated(app, "it", "Page log file") in form
    response = s.post(
        client,
        f"{SERVERS}new/",
        {"customer": str(office.customer_id), "name": "Server di stampa", "page_log_path": "", "active": "y"},
        f"{SERVERS}new/",
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    token = _token(response.get_data(as_text=True))
    with app.app_context():
        server = db.session.scalar(sa.select(PrintServer).where(PrintServer.name == "Server di stampa"))
        assert server.token_digest == hashlib.sha256(token.encode()).hexdigest()
        assert token.endswith(server.token_hint)
        assert not [column.key for column in PrintServer.__table__.columns if token in str(getattr(server, column.key))]
        assert token not in str(db.session.execute(sa.select(AuditLog)).all())
        assert print_servers.print_server_by_token(token).id == server.id
        server_id = server.id
    # Not on its page, nor in the list: only its last characters.
    details = client.get(f"{SERVERS}details/?id={server_id}").get_data(as_text=True)
    assert token not in details and token not in client.get(SERVERS).get_data(as_text=True)
    assert token[-4:] in s.text_of(details)

    rotated = s.post(client, f"{SERVERS}rotate/?id={server_id}", {}, f"{SERVERS}details/?id={server_id}")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new = _token(rotated.get_data(as_text=True))
    assert new != token
    with app.app_context():
        assert print_servers.print_server_by_token(token) is None
        assert print_servers.print_server_by_token(new).id == server_id


def test_a_print_server_name_taken_is_refused_under_its_field_and_nothing_is_stored(app, office, held):
    client = s.staff(app, "dealer_admin")
    response = s.post(
        client,
        f"{SERVERS}new/",
        {"customer": str(office.customer_id), "name": "CUPS sede", "page_log_path": ""},
        f"{SERVERS}new/",
    )
    assert response.status_code == 422
    tree = lxml.html.fromstring(response.get_data(as_text=True))
    assert tree.xpath("//input[@name='name' and contains(@class, 'is-invalid')]")
    assert "print-server-token" not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PrintServer)) == 1


def test_cups_users_and_queues_are_mapped_and_unmapped_on_the_servers_page(app, office, held):
    client = s.staff(app, "back_office")
    url = f"{SERVERS}details/?id={held.server}"
    page = _page(app, client, url)
    assert "Mario Rossi (mrossi)" in page  # offered in the print user choice
    s.post(
        client, f"{SERVERS}users/map/?id={held.server}", {"cups_user": "mario", "print_user_id": office.user_id}, url
    )
    s.post(client, f"{SERVERS}printers/map/?id={held.server}", {"queue": "Sicura", "device_id": office.device_id}, url)
    page = _page(app, client, url)
    assert "mario" in page and "Sicura" in page and "KY-A1" in page
    with app.app_context():
        server = db.session.get(PrintServer, held.server)
        assert held_jobs.map_cups_user(server, "mario").id == office.user_id
        assert print_servers.device_of_queue(server, "Sicura") == office.device_id
    # A queue with a space is refused, naming the field; nothing is stored.
    refused = s.post(
        client,
        f"{SERVERS}printers/map/?id={held.server}",
        {"queue": "Due parole", "device_id": office.device_id},
        url,
        follow_redirects=True,
    )
    assert translated(app, "it", "CUPS queue") in s.flashed(refused.get_data(as_text=True))
    s.post(client, f"{SERVERS}users/unmap/?id={held.server}", {"cups_user": "mario"}, url)
    s.post(client, f"{SERVERS}printers/unmap/?id={held.server}", {"queue": "Sicura"}, url)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PrintServerUser)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PrintServerPrinter)) == 0


def test_held_job_hours_are_set_in_the_customers_settings_and_bad_hours_are_refused(app, office):
    client = s.staff(app, "back_office")
    new = "/admin/device_accounting_privacy/new/"
    assert translated(app, "it", "Held print jobs wait (hours)") in _page(app, client, new)
    refused = s.post(client, new, {"customer": str(office.customer_id), "held_job_hours": "0"}, new)
    assert refused.status_code == 200 and "is-invalid" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(AccountingSettings, office.customer_id) is None
    s.post(client, new, {"customer": str(office.customer_id), "held_job_hours": "8"}, new)
    with app.app_context():
        assert db.session.get(AccountingSettings, office.customer_id).held_job_hours == 8
        server, _token = print_servers.create_print_server(office.customer_id, "CUPS")
        job, _new = held_jobs.submit_held_job(server, "mrossi", demo_pdf(1, "x"))
        assert job.expires_at - job.submitted_at == dt.timedelta(hours=8)
        db.session.rollback()
    assert "8" in _page(app, client, "/admin/device_accounting_privacy/")


def test_dashboard_and_record_panels_show_the_held_jobs_waiting(app, office, held):
    client = s.staff(app, "back_office")
    tree = lxml.html.fromstring(client.get("/admin/").get_data(as_text=True))
    card = tree.xpath("//a[contains(@href, 'device_accounting_held_job') and contains(@href, 'state=held')]")
    assert card
    box = card[0].xpath("ancestor-or-self::*[contains(@class, 'card')][1]")[0]
    assert "2" in s.text_of(lxml.html.tostring(box).decode())  # Mario's and Lucia's; not the deleted one

    customer = client.get(f"/admin/core_partner/details/?id={office.customer_id}").get_data(as_text=True)
    panel = lxml.html.fromstring(customer).xpath(
        "//*[@data-panel][.//a[contains(@href, 'device_accounting_held_job/details')]]"
    )
    assert panel
    text = s.text_of(lxml.html.tostring(panel[0]).decode())
    assert "Mario Rossi (mrossi)" in text and "Bilancio 2026.pdf" in text and "Bozza.pdf" not in text
    assert "CUPS sede" in s.text_of(customer)

    device = client.get(f"/admin/rentals_device/details/?id={office.device_id}").get_data(as_text=True)
    assert "Lettera.pdf" in s.text_of(device)  # waiting at the customer the device stands at


def test_import_page_log_now_charges_each_job_once_and_names_the_skipped_line(app, office, held, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "COPYDESK_PAGE_LOG_DIRS", [str(tmp_path)])
    with app.app_context():
        moment = (clock.now() - dt.timedelta(hours=1)).strftime("%d/%b/%Y:%H:%M:%S %z")
    log = tmp_path / "page_log"
    log.write_text(
        f"Ufficio 41 mrossi [{moment}] total 3 one-sided iso_a4_210x297mm monochrome urn:uuid:a1 Offerta.pdf\n"
        "questa riga non è di CUPS\n"
        f"Ufficio 42 lverdi [{moment}] total 2 one-sided iso_a4_210x297mm monochrome urn:uuid:a2 Memo.pdf\n"
    )
    with app.app_context():
        server = db.session.get(PrintServer, held.server)
        print_servers.update_print_server(server, {"page_log_path": str(log)})
        print_servers.map_printer(server, "Ufficio", office.other_device_id)
        db.session.commit()
        before = db.session.scalar(sa.select(sa.func.count()).select_from(Transaction))
    client = s.staff(app, "back_office")
    url = f"{SERVERS}details/?id={held.server}"
    assert str(log) in _page(app, client, url)
    first = s.post(client, f"{SERVERS}page-log/?id={held.server}", {}, url, follow_redirects=True)
    said = s.flashed(first.get_data(as_text=True))
    assert "2" in said and translated(app, "it", "Line %(line)s: %(problem)s", line="2", problem="") in said
    again = s.post(client, f"{SERVERS}page-log/?id={held.server}", {}, url, follow_redirects=True)
    assert first.status_code == again.status_code == 200
    with app.app_context():
        jobs = db.session.scalars(sa.select(Transaction).where(Transaction.device_id == office.other_device_id))
        assert sorted(tx.sides_bw for tx in jobs if tx.device_seq > 2**61) == [2, 3]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Transaction)) == before + 2

    log.unlink()  # a file that is gone is said so, not a 500
    missing = s.post(client, f"{SERVERS}page-log/?id={held.server}", {}, url, follow_redirects=True)
    assert missing.status_code == 200 and str(log) in s.flashed(missing.get_data(as_text=True))


def _add_servers(office, numbers: list[int]) -> None:
    """For each number a print server of Studio Rossi with a mapped CUPS user and two held jobs, one released."""
    for number in numbers:
        server, _token = print_servers.create_print_server(office.customer_id, f"CUPS {number}")
        print_servers.map_user(server, f"cups{number}", office.user_id)
        held_jobs.submit_held_job(server, f"cups{number}", demo_pdf(1, "x"), title=f"Documento {number}.pdf")
        gone, _new = held_jobs.submit_held_job(server, "lverdi", demo_pdf(2, "y"), title=f"Altro {number}.pdf")
        held_jobs.delete_held_job(gone.id, None, staff=True)
    db.session.commit()


@pytest.mark.parametrize("url", [HELD, SERVERS])
def test_a_list_of_three_times_the_rows_sends_no_more_queries(app, office, url):
    client = s.staff(app, "back_office")
    numbers = iter(range(1, 100))

    def count(rows: int):
        with app.app_context():
            _add_servers(office, [next(numbers) for _ in range(rows)])
        client.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
        with count_queries(app) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return s.text_of(response.get_data(as_text=True)), queries

    _page, few = count(2)
    page, many = count(4)
    assert "CUPS 6" in page or "Documento 6.pdf" in page
    assert_not_growing(few, many)
