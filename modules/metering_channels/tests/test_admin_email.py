"""The counter report back office through its real forms and CSRF tokens: upload an .eml, assign an unmatched email
to a device, the mailbox pages (password write-only, Poll now against the tests' dovecot), the device's panel."""

from __future__ import annotations

import io

import sqlalchemy as sa

from core.crypto import unseal
from core.db import db
from core.extensions import limiter
from core.validation import ValidationError
from modules.metering.models import Reading
from modules.metering_channels.models import CounterEmail, Mailbox
from modules.metering_channels.tests import samples
from tests.auth_support import CSRF_RE, login, make_user


def logged_in(app, role: str = "back_office"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def token(client, url: str) -> str:
    return CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)


def upload(client, raw: bytes, name: str = "report.eml"):
    return client.post(
        "/admin/metering_channels_upload/",
        data={"csrf_token": token(client, "/admin/metering_channels_upload/"), "file": (io.BytesIO(raw), name)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def all_readings(app) -> list[tuple]:
    with app.app_context():
        return [(r.device.serial, r.source, r.counters) for r in db.session.scalars(sa.select(Reading))]


def test_uploaded_eml_becomes_the_devices_reading(app):
    with app.app_context():
        samples.on_contract("VCF1")
    client = logged_in(app)
    page = upload(client, samples.kyocera_message("VCF1", 11_850, 2_310)).get_data(as_text=True)
    assert "Reading recorded for VCF1." in page
    assert all_readings(app) == [("VCF1", "email", {"bw": 11_850, "color": 2_310})]
    # the same file again records nothing more
    raw = samples.kyocera_message(
        "VCF1", 12_000, 2_400, when="2026/04/15 18:00", message_id="<same@test>", date=samples.sent("2026-04-15")
    )
    upload(client, raw)
    assert "This email had already been received." in upload(client, raw).get_data(as_text=True)
    assert len(all_readings(app)) == 2


def test_upload_without_a_file_names_the_problem(app):
    client = logged_in(app)
    response = client.post(
        "/admin/metering_channels_upload/",
        data={"csrf_token": token(client, "/admin/metering_channels_upload/")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Choose the .eml file of the counter report." in response.get_data(as_text=True)


def test_unmatched_email_is_assigned_to_a_device_from_the_queue(app):
    with app.app_context():
        samples.on_contract("VCF1")
    client = logged_in(app)
    page = upload(client, samples.kyocera_message("VCF-OLD-1", 11_850, 2_310)).get_data(as_text=True)
    assert "No device has serial number VCF-OLD-1." in page
    queue = client.get("/admin/metering_channels_queue/").get_data(as_text=True)
    assert "Total Printed Pages: Black &amp; White 11,850" in queue
    assert "No device found" in queue
    with app.app_context():
        email_id = db.session.scalar(sa.select(CounterEmail.id))
    response = client.post(
        f"/admin/metering_channels_queue/{email_id}/assign",
        data={"csrf_token": token(client, "/admin/metering_channels_queue/"), "serial": "vcf 1"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Reading recorded for VCF1." in page
    assert "Every counter report received became a reading." in page
    assert all_readings(app) == [("VCF1", "email", {"bw": 11_850, "color": 2_310})]
    with app.app_context():
        assigned = db.session.get(CounterEmail, email_id)
        assert (assigned.state, assigned.device.serial, assigned.handled_by is not None) == ("assigned", "VCF1", True)


def test_assigning_to_a_device_whose_counters_are_higher_is_refused_and_nothing_written(app):
    with app.app_context():
        samples.on_contract("VCF1", bw=50_000, color=9_000)
    client = logged_in(app)
    upload(client, samples.kyocera_message("NOPE", 11_850, 2_310))
    with app.app_context():
        email_id = db.session.scalar(sa.select(CounterEmail.id))
    page = client.post(
        f"/admin/metering_channels_queue/{email_id}/assign",
        data={"csrf_token": token(client, "/admin/metering_channels_queue/"), "serial": "VCF1"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "50,000" in page  # metering's message: lower than the last known counter
    assert all_readings(app) == []
    with app.app_context():
        assert db.session.get(CounterEmail, email_id).state == "unmatched"


def test_assigning_to_an_unknown_serial_says_so(app):
    client = logged_in(app)
    upload(client, samples.kyocera_message("NOPE", 11_850, 2_310))
    with app.app_context():
        email_id = db.session.scalar(sa.select(CounterEmail.id))
    page = client.post(
        f"/admin/metering_channels_queue/{email_id}/assign",
        data={"csrf_token": token(client, "/admin/metering_channels_queue/"), "serial": "ZZZ"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "No device has serial number ZZZ." in page


def test_technician_sees_the_queue_but_cannot_create_mailboxes(app):
    client = logged_in(app, "technician")
    assert client.get("/admin/metering_channels_queue/").status_code == 200
    assert client.get("/admin/metering_channels_mailbox/new/").status_code in (302, 403)


def test_mailbox_password_is_sealed_and_never_shown(app):
    client = logged_in(app, "dealer_admin")
    url = "/admin/metering_channels_mailbox/new/"
    response = client.post(
        url,
        data={
            "csrf_token": token(client, url),
            "name": "Counters",
            "host": "mail.dealer.test",
            "port": "993",
            "security": "ssl",
            "username": "counters@dealer.test",
            "password": "s3cret-pass",
            "folder": "INBOX",
            "processed_folder": "Copydesk/Processed",
            "unmatched_folder": "Copydesk/Unmatched",
            "active": "y",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        mailbox = db.session.scalars(sa.select(Mailbox)).one()
        assert unseal(mailbox.password_sealed, "metering_channels.mailbox") == "s3cret-pass"
        mailbox_id = mailbox.id
    edit = client.get(f"/admin/metering_channels_mailbox/edit/?id={mailbox_id}").get_data(as_text=True)
    details = client.get(f"/admin/metering_channels_mailbox/details/?id={mailbox_id}").get_data(as_text=True)
    listing = client.get("/admin/metering_channels_mailbox/").get_data(as_text=True)
    for page in (edit, details, listing):
        assert "s3cret-pass" not in page and mailbox.password_sealed[:20] not in page
    # saving the form with the password left empty keeps it
    url = f"/admin/metering_channels_mailbox/edit/?id={mailbox_id}"
    client.post(
        url,
        data={
            "csrf_token": token(client, url),
            "name": "Counters (office)",
            "host": "mail.dealer.test",
            "port": "993",
            "security": "ssl",
            "username": "counters@dealer.test",
            "password": "",
            "folder": "INBOX",
            "processed_folder": "Copydesk/Processed",
            "unmatched_folder": "Copydesk/Unmatched",
            "active": "y",
        },
    )
    with app.app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        assert mailbox.name == "Counters (office)"
        assert unseal(mailbox.password_sealed, "metering_channels.mailbox") == "s3cret-pass"


def test_new_mailbox_needs_a_password(app):
    client = logged_in(app, "dealer_admin")
    url = "/admin/metering_channels_mailbox/new/"
    response = client.post(
        url,
        data={
            "csrf_token": token(client, url),
            "name": "M",
            "host": "h",
            "port": "993",
            "security": "ssl",
            "username": "u",
            "password": "",
            "folder": "INBOX",
            "processed_folder": "P",
            "unmatched_folder": "U",
        },
    )
    assert response.status_code == 200  # the form again, with the error under the password
    with app.app_context():
        assert db.session.scalars(sa.select(Mailbox)).all() == []


def test_poll_now_reads_the_mailbox_and_the_list_shows_its_state(app, imap_server, mailbox_of):
    with app.app_context():
        samples.on_contract("VCF1")
        mailbox_id = mailbox_of(imap_server).id
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    imap_server.append(samples.kyocera_message("NOPE", 11_850, 2_310))
    client = logged_in(app)
    response = client.post(
        f"/admin/metering_channels_mailbox/{mailbox_id}/poll",
        data={"csrf_token": token(client, "/admin/metering_channels_mailbox/")},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Counters read: 2 new messages." in page
    assert len(all_readings(app)) == 1
    with app.app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        assert (mailbox.processed_count, mailbox.unmatched_count) == (1, 1)


def test_device_page_shows_the_channel_of_its_readings_and_its_emails(app):
    with app.app_context():
        device_id = samples.on_contract("VCF1").id
    client = logged_in(app)
    upload(client, samples.kyocera_message("VCF1", 11_850, 2_310))
    with app.app_context():
        email_id = db.session.scalar(sa.select(CounterEmail.id))
    page = client.get(f"/admin/rentals_device/details/?id={device_id}").get_data(as_text=True)
    assert "Channels of the last readings" in page and "Email" in page
    assert "Counter report emails" in page
    assert f"/admin/metering_channels_email/details/?id={email_id}" in page


def email_id_of(app, key: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(CounterEmail.id).where(CounterEmail.message_key == key))


def test_the_email_list_links_the_reading_it_became(app):
    with app.app_context():
        samples.on_contract("VCF1")
    client = logged_in(app)
    upload(client, samples.kyocera_message("VCF1", 11_850, 2_310))
    with app.app_context():
        reading_id = db.session.scalar(sa.select(Reading.id))
    page = client.get("/admin/metering_channels_email/").get_data(as_text=True)
    assert f"/admin/metering_reading/details/?id={reading_id}" in page


def test_the_queue_is_newest_first_in_pages_and_an_email_can_be_discarded_or_downloaded(app, monkeypatch):
    from modules.metering_channels import admin

    monkeypatch.setattr(admin, "QUEUE_PAGE", 2)
    client = logged_in(app)
    for day in ("2026-04-01", "2026-04-02", "2026-04-03"):
        raw = samples.kyocera_message(f"LOST{day[-1]}", 100, 10, message_id=f"<{day}@test>", date=samples.sent(day))
        upload(client, raw)
    with app.app_context():
        for day in ("2026-04-01", "2026-04-02", "2026-04-03"):
            row = db.session.get(CounterEmail, email_id_of(app, f"{day}@test"))
            row.received_at = samples.sent(day)
        db.session.commit()
    first = client.get("/admin/metering_channels_queue/").get_data(as_text=True)
    assert first.index("LOST3") < first.index("LOST2") and "LOST1" not in first and "1 / 2" in first
    assert "LOST1" in client.get("/admin/metering_channels_queue/?page=2").get_data(as_text=True)

    lost1 = email_id_of(app, "2026-04-01@test")
    download = client.get(f"/admin/metering_channels_queue/{lost1}/eml")
    assert download.mimetype == "message/rfc822" and b"Serial Number: LOST1" in download.data
    assert "attachment" in download.headers["Content-Disposition"]

    page = client.post(
        f"/admin/metering_channels_queue/{lost1}/discard",
        data={"csrf_token": token(client, "/admin/metering_channels_queue/")},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Discarded: " in page
    with app.app_context():
        discarded = db.session.get(CounterEmail, lost1)
        assert (discarded.state, discarded.handled_by is not None) == ("discarded", True)
    assert "LOST1" not in client.get("/admin/metering_channels_queue/?page=2").get_data(as_text=True)
    assert all_readings(app) == []


def test_an_email_assigned_meanwhile_is_not_assigned_again(app):
    from modules.metering_channels import emails
    from modules.rentals.models import Device

    with app.app_context():
        samples.on_contract("VCF1")
    client = logged_in(app)
    upload(client, samples.kyocera_message("NOPE", 11_850, 2_310, message_id="<twice@test>"))
    with app.app_context():
        stale = db.session.get(CounterEmail, email_id_of(app, "twice@test"))
        device_id = db.session.scalar(sa.select(Device.id))
        assert stale.state == "unmatched"
        # another member of staff assigns it meanwhile (their own connection)
        with db.engine.begin() as other:
            other.execute(sa.update(CounterEmail).where(CounterEmail.id == stale.id).values(state="assigned"))
        try:
            emails.assign(stale, device_id, None)
        except ValidationError as error:
            assert error.errors == {"state": "This email is not waiting to be assigned."}
        else:
            raise AssertionError("assigned twice")
        db.session.rollback()
    assert all_readings(app) == []


def test_assigning_keeps_the_toner_levels_and_prefers_the_report_s_make(app):
    with app.app_context():
        samples.on_contract("SAME1")  # a Kyocera
        samples.on_contract("SAME1", make="HP")
    client = logged_in(app)
    upload(client, samples.kyocera_message("OTHER1", 11_850, 2_310, message_id="<make@test>"))
    email_id = email_id_of(app, "make@test")
    page = client.post(
        f"/admin/metering_channels_queue/{email_id}/assign",
        data={"csrf_token": token(client, "/admin/metering_channels_queue/"), "serial": "SAME1"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Reading recorded for SAME1." in page
    with app.app_context():
        reading = db.session.scalars(sa.select(Reading)).one()
        assert reading.device.manufacturer.name == "Kyocera"
        assert reading.supply_levels == {"black": 45, "cyan": 80}


def test_a_report_with_no_meter_of_the_device_names_its_meters_in_words(app):
    with app.app_context():
        samples.on_contract("A3ONLY", meters=("a3_bw",))
    client = logged_in(app)
    page = upload(client, samples.kyocera_message("A3ONLY", 11_850, 2_310)).get_data(as_text=True)
    assert "is a meter of device A3ONLY (it has A3 black and white)." in page


def test_an_upload_that_breaks_the_reader_says_so_instead_of_failing(app, monkeypatch):
    from modules.metering_channels import email_profiles

    def broken(profile, msg):
        raise RuntimeError("a layout nobody foresaw")

    monkeypatch.setattr(email_profiles.Profile, "parse", broken)
    client = logged_in(app)
    response = upload(client, samples.kyocera_message("VCF1", 11_850, 2_310))
    assert response.status_code == 200
    assert "The message could not be read: see it in the queue." in response.get_data(as_text=True)


def test_sealed_secrets_of_mailboxes_and_snmp_devices_never_reach_the_audit_log(app):
    from core.models import AuditLog
    from modules.metering_channels.imap_poll import set_password
    from modules.metering_channels.models import SnmpDevice
    from modules.metering_channels.snmp import seal_secret

    with app.app_context():
        device = samples.on_contract("SNMP1")
        mailbox = Mailbox(name="M", host="h", port=993, security="ssl", username="u")
        set_password(mailbox, "s3cret")
        snmp = SnmpDevice(
            device_id=device.id,
            version="3",
            community_sealed=seal_secret("public-x"),
            v3_user="u",
            v3_auth_key_sealed=seal_secret("auth-key-x"),
            v3_priv_key_sealed=seal_secret("priv-key-x"),
        )
        db.session.add_all([mailbox, snmp])
        db.session.commit()
        sealed = [mailbox.password_sealed, snmp.community_sealed, snmp.v3_auth_key_sealed, snmp.v3_priv_key_sealed]
        entries = db.session.scalars(
            sa.select(AuditLog).where(
                AuditLog.object_type.in_(("metering_channels_mailbox", "metering_channels_snmp_device"))
            )
        ).all()
        assert len(entries) == 2
        text = repr([entry.changes for entry in entries])
        assert not any(value[:16] in text for value in sealed)
        changes = {entry.object_type: entry.changes for entry in entries}
        assert changes["metering_channels_mailbox"]["password_sealed"] == "changed"
        for column in ("community_sealed", "v3_auth_key_sealed", "v3_priv_key_sealed"):
            assert changes["metering_channels_snmp_device"][column] == "changed"
