"""The collector's back office as staff use it, in Italian: enrolled devices and their state, an enrolment code shown
once with what to type and the fingerprint to check, revoking (audited, refused at once), refused jobs, the live view
and its JSON, the dashboard card and the panel on the rentals device page; customers and strangers kept out."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

import lxml.html
import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from core.models import AuditLog, Partner, User
from modules.device_accounting.models import PrintUser
from modules.device_accounting.tests import admin_support as s
from modules.device_accounting.tests import core_support
from modules.device_accounting.tests.scan_support import places_holding
from modules.device_collector import enrolment, pki
from modules.device_collector.models import CollectorDevice, EnrolmentCode, RefusedTransaction
from modules.device_collector.simulator import make_csr
from tests.auth_support import login, make_customer, make_user
from tests.query_counter import assert_not_growing, count_queries
from tests.test_back_office_labels import _problems, _record_pages

DEVICES = "/admin/device_collector_device/"
CODES = "/admin/device_collector_code/"
LIVE = "/admin/device_collector_live/"
REFUSED = "/admin/device_collector_refused/"
CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")


@dataclass
class Enrolled:
    office: s.Office
    collector_id: int  # KY-A1, enrolled
    other_collector_id: int  # KY-B2, enrolled


def enrol_directly(device_id: int) -> CollectorDevice:
    """A device enrolled as the collector would enrol it: a code, then the code redeemed with a CSR."""
    from modules.rentals.models import Device

    _code, plain = enrolment.create_code(db.session.get(Device, device_id), None)
    collector, _pem, _not_after = enrolment.redeem_code(plain, make_csr()[0], "10.0.0.7:50123")
    db.session.commit()
    return collector


@pytest.fixture
def office(app):
    """Studio Rossi with devices KY-A1 and KY-B2, print users and three jobs (device accounting's admin_support)."""
    with app.app_context():
        return s.office()


@pytest.fixture
def enrolled(app, office):
    with app.app_context():
        first = enrol_directly(office.device_id)
        second = enrol_directly(office.other_device_id)
        return Enrolled(office, first.id, second.id)


def _xpath_text(html: str, xpath: str) -> str:
    return " ".join(" ".join(node.text_content().split()) for node in lxml.html.fromstring(html).xpath(xpath))


def test_the_pages_open_for_staff_and_stay_closed_to_customers_and_strangers(app, enrolled):
    with app.app_context():
        refused = RefusedTransaction(
            collector_device_id=enrolled.collector_id,
            device_seq=7,
            errors=json.dumps({"sides_bw": "Must be a whole number."}),
            payload=json.dumps({"device_seq": 7, "function": "print", "sides_bw": -1}),
        )
        db.session.add(refused)
        code = db.session.scalars(sa.select(EnrolmentCode)).first()
        db.session.commit()
        refused_id, code_id = refused.id, code.id
    pages = [
        DEVICES,
        f"{DEVICES}details/?id={enrolled.collector_id}",
        f"{DEVICES}?state=stale",
        CODES,
        f"{CODES}details/?id={code_id}",
        LIVE,
        f"{LIVE}feed.json",
        REFUSED,
        f"{REFUSED}details/?id={refused_id}",
        f"{CODES}enrol/",
        f"{CODES}enrol/?device_id={enrolled.office.device_id}",
        f"{DEVICES}revoke/?id={enrolled.collector_id}",
    ]
    for role in ("technician", "back_office", "dealer_admin"):
        client = s.staff(app, role)
        for url in pages:
            assert client.get(url).status_code == 200, (role, url)

    with app.app_context():
        customer_id = make_customer("Studio Rossi clienti")
        make_user("cliente@rossi.example", "customer_admin", customer_id=customer_id)
    customer = app.test_client()
    assert login(customer, "cliente@rossi.example", url="/portal/login").status_code == 302
    stranger = app.test_client()
    for url in pages:
        assert customer.get(url).status_code == 403, url
        answer = stranger.get(url)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], url
    # Nor can they act: no code is made, nothing revoked.
    assert customer.post(f"{CODES}enrol/", data={"device_id": enrolled.office.device_id}).status_code in (400, 403)
    assert stranger.post(f"{DEVICES}revoke/?id={enrolled.collector_id}", data={"reason": "x"}).status_code in (
        302,
        400,
    )
    with app.app_context():
        assert db.session.get(CollectorDevice, enrolled.collector_id).revoked_at is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EnrolmentCode)) == 2


def test_a_new_code_is_shown_once_with_what_to_type_and_the_fingerprint_to_check(app, office):
    app.config["COPYDESK_COLLECTOR_PUBLIC_HOST"] = "collector.rossi-copy.example"
    try:
        client = s.staff(app, "technician")
        form = f"{CODES}enrol/?device_id={office.device_id}"
        choose = client.get(f"{CODES}enrol/").get_data(as_text=True)
        assert "KY-A1" in s.text_of(choose)  # the device is picked from a list when none is given
        # Without the form's CSRF token nothing is created.
        assert client.post(f"{CODES}enrol/", data={"device_id": office.device_id}).status_code == 400
        page = s.post(client, f"{CODES}enrol/", {"device_id": office.device_id}, form)
    finally:
        del app.config["COPYDESK_COLLECTOR_PUBLIC_HOST"]
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    code = _xpath_text(html, "//*[@id='enrolment-code']")
    assert CODE.fullmatch(code), code
    assert _xpath_text(html, "//*[@id='collector-host']") == "collector.rossi-copy.example"
    assert _xpath_text(html, "//*[@id='collector-port']") == "9443"
    with app.app_context():
        ca = pki.ensure_ca()
        fingerprint = pki.display_fingerprint(ca.fingerprint)
    assert _xpath_text(html, "//*[@id='ca-fingerprint']") == fingerprint
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint)
    assert "KY-A1" in s.text_of(html)

    # Never again: not in the lists, the code's page, the device's pages, nor anywhere in the database.
    with app.app_context():
        row = db.session.scalars(sa.select(EnrolmentCode)).one()
        assert places_holding(code) == [] and places_holding(code.replace("-", "")) == []
    listing = client.get(CODES).get_data(as_text=True)
    assert "KY-A1" in s.text_of(listing) and s.label(app, "device_collector.code_state", "open") in s.text_of(listing)
    for url in (CODES, f"{CODES}details/?id={row.id}", f"/admin/rentals_device/details/?id={office.device_id}"):
        shown = client.get(url).get_data(as_text=True)
        assert code not in shown and code.replace("-", "") not in shown, url
        assert not CODE.search(s.text_of(shown)), url

    # The code works at the device (typed in small letters without dashes), once; the list then says it was used.
    with app.app_context():
        enrolment.redeem_code(code.replace("-", "").lower(), make_csr()[0], "10.1.2.3:4000")
        db.session.commit()
        with pytest.raises(enrolment.EnrolmentRefused):
            enrolment.redeem_code(code, make_csr()[0], None)
        db.session.rollback()
    assert s.label(app, "device_collector.code_state", "used") in s.text_of(client.get(CODES).get_data(as_text=True))
    devices = s.text_of(client.get(DEVICES).get_data(as_text=True))
    assert "KY-A1" in devices and s.label(app, "device_collector.state", "never") in devices


def test_a_new_code_stops_the_earlier_one(app, office):
    client = s.staff(app, "back_office")
    form = f"{CODES}enrol/?device_id={office.device_id}"
    first = _xpath_text(
        s.post(client, f"{CODES}enrol/", {"device_id": office.device_id}, form).get_data(as_text=True),
        "//*[@id='enrolment-code']",
    )
    second = _xpath_text(
        s.post(client, f"{CODES}enrol/", {"device_id": office.device_id}, form).get_data(as_text=True),
        "//*[@id='enrolment-code']",
    )
    assert first != second
    listing = s.text_of(client.get(CODES).get_data(as_text=True))
    assert s.label(app, "device_collector.code_state", "expired") in listing
    with app.app_context():
        with pytest.raises(enrolment.EnrolmentRefused):
            enrolment.redeem_code(first, make_csr()[0], None)
        db.session.rollback()
        enrolment.redeem_code(second, make_csr()[0], None)
        db.session.commit()


def test_revoking_asks_why_and_to_confirm_refuses_the_device_at_once_and_is_audited(app, enrolled):
    client = s.staff(app, "back_office")
    url = f"{DEVICES}revoke/?id={enrolled.collector_id}"
    unconfirmed = s.post(client, url, {"reason": "Rubata in ufficio"}, url)
    assert unconfirmed.status_code == 422
    with app.app_context():
        assert db.session.get(CollectorDevice, enrolled.collector_id).revoked_at is None
    done = s.post(client, url, {"reason": "Rubata in ufficio", "confirm": "yes"}, url, follow_redirects=True)
    assert done.status_code == 200
    page = s.text_of(done.get_data(as_text=True))
    assert s.label(app, "device_collector.state", "revoked") in page and "Rubata in ufficio" in page
    with app.app_context():
        collector = db.session.get(CollectorDevice, enrolled.collector_id)
        staff = db.session.scalar(sa.select(User).where(User.email == "back_office@copy.example"))
        assert collector.revoked_at is not None and collector.revoked_by_id == staff.id
        assert all(certificate.revoked_at is not None for certificate in collector.certificates)
        for certificate in collector.certificates:
            assert enrolment.check_certificate(certificate.fingerprint)[1] == "revoked"
        # The other device still gets in.
        other = db.session.get(CollectorDevice, enrolled.other_collector_id)
        assert enrolment.check_certificate(other.certificates[0].fingerprint)[1] is None
        entry = db.session.scalars(
            sa.select(AuditLog)
            .where(
                AuditLog.object_type == "device_collector_device",
                AuditLog.object_id == str(enrolled.collector_id),
                AuditLog.action == "update",
            )
            .order_by(AuditLog.id.desc())
            .limit(1)
        ).one()
        assert entry.user_id == staff.id
        assert "revoked_reason" in entry.changes and "revoked_at" in entry.changes
    # The revoked device's page offers enrolling it again, not revoking it twice.
    details = client.get(f"{DEVICES}details/?id={enrolled.collector_id}").get_data(as_text=True)
    assert f"revoke/?id={enrolled.collector_id}" not in details
    assert f"enrol/?device_id={enrolled.office.device_id}" in details


def _seen(app, collector_id: int, last_seen: dt.datetime | None, enrolled_at: dt.datetime | None = None):
    with app.app_context():
        collector = db.session.get(CollectorDevice, collector_id)
        collector.last_seen_at = last_seen
        if enrolled_at is not None:
            collector.enrolled_at = enrolled_at
        db.session.commit()


def test_the_dashboard_counts_enrolled_devices_not_seen_for_a_day_and_links_to_them(app, enrolled):
    now = utcnow()
    with app.app_context():
        customer = db.session.get(Partner, enrolled.office.customer_id)
        quiet = enrol_directly(core_support.device("KY-C3", at=customer).id).id
        revoked = enrol_directly(core_support.device("KY-D4", at=customer).id).id
        enrol_directly(core_support.device("KY-E5", at=customer).id)  # just now, not connected yet: not late
    _seen(app, enrolled.collector_id, now - dt.timedelta(hours=2))  # fine
    _seen(app, enrolled.other_collector_id, now - dt.timedelta(days=2))  # silent for two days
    _seen(app, quiet, None, enrolled_at=now - dt.timedelta(days=3))  # enrolled three days ago, never heard since
    _seen(app, revoked, now - dt.timedelta(days=5))
    with app.app_context():
        enrolment.revoke(db.session.get(CollectorDevice, revoked), "Sostituita", None)
        db.session.commit()

    client = s.staff(app, "technician")
    tree = lxml.html.fromstring(client.get("/admin/").get_data(as_text=True))
    link = tree.xpath("//a[contains(@href, 'device_collector_device') and contains(@href, 'state=stale')]")
    assert link
    card = link[0].xpath("ancestor-or-self::*[contains(@class, 'card')][1]")[0]
    assert re.search(r"\b2\b", " ".join(card.text_content().split()))
    listed = s.text_of(client.get(link[0].get("href")).get_data(as_text=True))
    assert "KY-B2" in listed and "KY-C3" in listed
    assert "KY-A1" not in listed and "KY-D4" not in listed and "KY-E5" not in listed
    assert s.label(app, "device_collector.state", "stale") in listed


def test_the_live_view_returns_the_latest_jobs_by_name_newest_first(app, enrolled):
    with app.app_context():
        customer = db.session.get(Partner, enrolled.office.customer_id)
        elsewhere = core_support.device("KY-X9", at=customer)  # not on the collector
        s.record_job(elsewhere.id, enrolled.office.other_user_id, sides_bw=99)
        s.record_job(
            enrolled.office.device_id, enrolled.office.user_id, sides_bw=4, cost_center_id=enrolled.office.child_id
        )
        db.session.commit()
    client = s.staff(app, "back_office")
    answer = client.get(f"{LIVE}feed.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    data = answer.get_json()
    jobs = data["transactions"]
    # The office's three jobs (two at KY-A1, one at KY-B2) and the new one: the device off the collector is left out.
    assert len(jobs) == 4
    newest = jobs[0]
    assert newest["device"]["name"].startswith("KY-A1")
    assert newest["customer"]["name"] == "Studio Rossi"
    assert newest["user"]["name"] == "Mario Rossi (mrossi)"
    assert newest["cost_center"]["name"] == "Amministrazione / Contabilità"
    assert newest["function"] == s.label(app, "device_accounting.function", "print")
    assert newest["status"] == s.label(app, "device_accounting.job_status", "done")
    assert newest["cost"] == "0,04\xa0€" and newest["sides_bw"] == "4"
    assert all(job["device"]["name"].split(" ")[0] in ("KY-A1", "KY-B2") for job in jobs)
    for job in jobs:
        assert job["url"].startswith("/admin/device_accounting_transaction/details/")
        assert job["device"]["url"] and job["customer"]["url"] and job["user"]["url"]

    def values(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                assert not key.endswith("_id") and key != "id", key
                yield from values(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from values(inner)
        else:
            yield value

    assert not [value for value in values(data) if isinstance(value, int)]  # names, not ids

    page = client.get(LIVE)
    html = page.get_data(as_text=True)
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    scripts = lxml.html.fromstring(html).xpath("//script[not(@src)]")
    assert scripts and all(script.get("nonce") == nonce for script in scripts)
    rows = lxml.html.fromstring(html).xpath("//table[@id='live-jobs']/tbody/tr")
    assert len(rows) == 4 and "Mario Rossi (mrossi)" in rows[0].text_content()


def test_a_refused_job_shows_what_was_wrong_and_what_was_sent_by_name(app, enrolled):
    with app.app_context():
        refused = RefusedTransaction(
            collector_device_id=enrolled.collector_id,
            device_seq=41,
            errors=json.dumps({"sides_color": "Il numero di facciate non può essere negativo."}),
            payload=json.dumps(
                {"device_seq": 41, "user_id": enrolled.office.user_id, "function": "copy", "sides_color": -3}
            ),
        )
        db.session.add(refused)
        db.session.commit()
        refused_id = refused.id
    client = s.staff(app, "back_office")
    listing = s.text_of(client.get(REFUSED).get_data(as_text=True))
    assert "KY-A1" in listing and "Studio Rossi" in listing
    assert "Il numero di facciate non può essere negativo." in listing
    details = client.get(f"{REFUSED}details/?id={refused_id}").get_data(as_text=True)
    sent = lxml.html.fromstring(details).xpath("//table[@id='refused-sent']")[0]
    assert sent.xpath(".//a[contains(@href, 'device_accounting_user/details')]")
    assert "Mario Rossi (mrossi)" in sent.text_content()
    assert s.label(app, "device_accounting.function", "copy") in sent.text_content()


def test_the_rentals_device_page_shows_the_collector_state_and_its_actions(app, office):
    client = s.staff(app, "technician")
    url = f"/admin/rentals_device/details/?id={office.device_id}"
    panel = lxml.html.fromstring(client.get(url).get_data(as_text=True)).xpath(
        "//*[@data-panel][.//a[contains(@href, 'device_collector_code/enrol')]]"
    )
    assert panel, "no collector panel on a device not yet enrolled"
    assert f"device_id={office.device_id}" in panel[0].xpath(".//a[contains(@href, 'enrol')]")[0].get("href")
    with app.app_context():
        collector_id = enrol_directly(office.device_id).id
    _seen(app, collector_id, utcnow() - dt.timedelta(minutes=5))
    html = client.get(url).get_data(as_text=True)
    panel = lxml.html.fromstring(html).xpath("//*[@data-panel][.//a[contains(@href, 'device_collector_device')]]")[0]
    text = " ".join(panel.text_content().split())
    assert s.label(app, "device_collector.state", "enrolled") in text
    revoke = panel.xpath(".//a[contains(@href, 'device_collector_device/revoke')]")
    assert revoke and f"id={collector_id}" in revoke[0].get("href")
    assert client.get(revoke[0].get("href")).status_code == 200


def test_the_pages_name_records_by_links_and_translate_every_state_in_italian(app, enrolled):
    with app.app_context():
        db.session.add(
            RefusedTransaction(
                collector_device_id=enrolled.collector_id,
                device_seq=8,
                errors=json.dumps({"function": "Funzione sconosciuta."}),
                payload=json.dumps({"device_seq": 8, "function": "print", "user_id": enrolled.office.user_id}),
            )
        )
        enrolment.revoke(db.session.get(CollectorDevice, enrolled.other_collector_id), "Sostituita", None)
        db.session.commit()
    with app.app_context():
        admin_id = make_user("titolare@copy.example", "dealer_admin", language="it", name="Giulia Neri").id
    client = app.test_client()
    assert login(client, "titolare@copy.example").status_code == 302  # a name no code reads like
    with app.app_context():
        records, linkable = _record_pages(app, admin_id)
        code_id = db.session.scalars(sa.select(EnrolmentCode.id)).first()
        refused_id = db.session.scalars(sa.select(RefusedTransaction.id)).first()
    views = {view.endpoint: view for view in app.extensions["copydesk"].admin._views}
    pages = [
        (DEVICES, "device_collector_device"),
        (f"{DEVICES}details/?id={enrolled.collector_id}", "device_collector_device"),
        (f"{DEVICES}details/?id={enrolled.other_collector_id}", "device_collector_device"),
        (CODES, "device_collector_code"),
        (f"{CODES}details/?id={code_id}", "device_collector_code"),
        (REFUSED, "device_collector_refused"),
        (f"{REFUSED}details/?id={refused_id}", "device_collector_refused"),
        (LIVE, "device_collector_live"),
        (f"{CODES}enrol/?device_id={enrolled.office.device_id}", "device_collector_live"),
        (f"{DEVICES}revoke/?id={enrolled.collector_id}", "device_collector_live"),
        (f"/admin/rentals_device/details/?id={enrolled.office.device_id}", "rentals_device"),
        ("/admin/", "device_collector_live"),
    ]
    problems = []
    for url, endpoint in pages:
        answer = client.get(url)
        assert answer.status_code == 200, url
        with app.app_context():
            problems += _problems(app, url, views[endpoint], answer.get_data(as_text=True), records, linkable)
    assert not problems, "\n".join(problems)


def _more_devices(app, customer_id: int, numbers: range) -> None:
    """Devices KY-Q<n> enrolled, each with a job by Mario Rossi at a cost center and a refused job."""
    with app.app_context():
        customer = db.session.get(Partner, customer_id)
        user = db.session.scalar(sa.select(PrintUser).where(PrintUser.username == "mrossi"))
        for number in numbers:
            collector = enrol_directly(core_support.device(f"KY-Q{number}", at=customer).id)
            s.record_job(collector.device_id, user.id, sides_bw=number, cost_center_id=user.default_cost_center_id)
            db.session.add(
                RefusedTransaction(
                    collector_device_id=collector.id,
                    device_seq=number,
                    errors=json.dumps({"sides_bw": "Troppe."}),
                    payload=json.dumps({"device_seq": number, "user_id": user.id}),
                )
            )
        db.session.commit()


@pytest.mark.parametrize("url", [DEVICES, CODES, REFUSED, LIVE, f"{LIVE}feed.json"])
def test_the_lists_cost_as_many_queries_for_three_times_the_rows(app, office, url):
    client = s.staff(app, "back_office")
    _more_devices(app, office.customer_id, range(1, 5))
    client.get(url)  # warm: the first request of a client loads its login and language
    with count_queries(app) as few:
        assert client.get(url).status_code == 200
    _more_devices(app, office.customer_id, range(5, 13))
    with count_queries(app) as many:
        page = client.get(url).get_data(as_text=True)
    assert all(f"KY-Q{number} " in page for number in range(1, 13)), url
    assert_not_growing(few, many)


def test_refused_jobs_filtered_by_serial_show_only_that_devices(app, office):
    client = s.staff(app, "back_office")
    _more_devices(app, office.customer_id, range(1, 4))
    # The serial number is the view's first filter.
    page = client.get(f"{REFUSED}?flt0_0=KY-Q2").get_data(as_text=True)
    rows = lxml.html.fromstring(page).xpath("//table[contains(@class, 'model-list')]//tr[td]")
    assert len(rows) == 1 and "KY-Q2 " in rows[0].text_content()
