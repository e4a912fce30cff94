"""Counter report emails put into a real IMAP mailbox (the tests' dovecot) become readings once, however often the
poll runs, and are moved out of the inbox: to the processed folder, or to the unmatched one with the reason."""

from __future__ import annotations

import imaplib

import pytest
import sqlalchemy as sa

from core.db import db
from modules.metering.models import Reading
from modules.metering.tests import support as s
from modules.metering.validation import validate_reading
from modules.metering_channels import emails, imap_poll, jobs
from modules.metering_channels.models import CounterEmail, Mailbox
from modules.metering_channels.tests import samples
from modules.metering_channels.tests.test_email_profiles import CASES

PROCESSED = "Copydesk/Processed"
UNMATCHED = "Copydesk/Unmatched"


def readings() -> list[Reading]:
    return db.session.scalars(sa.select(Reading).order_by(Reading.taken_at, Reading.id)).all()


def stored(message_id: str) -> CounterEmail:
    return db.session.scalars(sa.select(CounterEmail).where(CounterEmail.message_key == message_id)).one()


def test_reports_become_readings_once_however_often_the_poll_runs(db_session, imap_server, mailbox_of):
    kyocera = samples.on_contract("VCF9X12345")
    hp = samples.on_contract("CNBRP12345", make="HP")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF9X12345", 11_850, 2_310, message_id="<k1@test>"))
    imap_server.append(samples.message("HP", samples.hp("CNBRP12345", 12_000, 2_500), message_id="<h1@test>"))

    for _ in range(3):
        jobs.poll_mailboxes()

    found = sorted(readings(), key=lambda r: r.device_id)
    assert [(r.device_id, r.source, r.status, r.counters) for r in found] == [
        (kyocera.id, "email", "accepted", {"bw": 11_850, "color": 2_310}),
        (hp.id, "email", "accepted", {"bw": 12_000, "color": 2_500}),
    ]
    assert stored("k1@test").state == "read" and stored("k1@test").reading_id is not None
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(PROCESSED)) == 2
    mailbox = db_session.get(Mailbox, mailbox.id)
    assert (mailbox.processed_count, mailbox.unmatched_count, mailbox.last_error) == (2, 0, None)
    assert mailbox.last_polled_at is not None


# The serial each sample of test_email_profiles.CASES reports, in the same order.
SAMPLE_SERIALS = (
    "VCF9X12345",
    "E174M12345",
    "2XY12345",
    "AA2J021012345",
    "CNBRP12345",
    "3501234500",
    "3390123456",
    "7538123456789",
)


def test_every_makes_sample_in_the_mailbox_becomes_one_reading_of_its_device(db_session, imap_server, mailbox_of):
    pairs = zip(CASES, SAMPLE_SERIALS, strict=True)
    devices = {make: samples.on_contract(serial, make=make) for (make, _raw, _name), serial in pairs}
    mailbox_of(imap_server)
    for _make, raw, _name in CASES:
        imap_server.append(raw)

    for _ in range(3):
        jobs.poll_mailboxes()

    by_device = {reading.device_id: reading for reading in readings()}
    assert len(readings()) == len(CASES)
    for make, device in devices.items():
        reading = by_device[device.id]
        assert (make, reading.source, reading.status, reading.counters) == (
            make,
            "email",
            "accepted",
            {"bw": 11_850, "color": 2_310},
        )
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(PROCESSED)) == len(CASES)


def test_the_same_report_sent_again_is_one_reading(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox_of(imap_server)
    raw = samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<again@test>")
    imap_server.append(raw)
    jobs.poll_mailboxes()
    imap_server.append(raw)  # the device, or a forwarding rule, sent it a second time
    jobs.poll_mailboxes()

    assert len(readings()) == 1
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CounterEmail)) == 1
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(PROCESSED)) == 2


def test_the_toner_levels_come_with_the_reading(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    assert readings()[0].supply_levels == {"black": 45, "cyan": 80}


def test_unknown_serial_waits_in_the_unmatched_queue_with_its_reason(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("NOSUCH99", 11_850, 2_310, message_id="<lost@test>"))
    jobs.poll_mailboxes()

    assert readings() == []
    lost = stored("lost@test")
    assert (lost.state, lost.serial, lost.reason) == ("unmatched", "NOSUCH99", "No device has serial number NOSUCH99.")
    assert lost.counters == {
        "Total Printed Pages: Black & White": 11_850,
        "Total Printed Pages: Full Color": 2_310,
        "Total Printed Pages": 14_160,
        "Total Scanned Pages": 570,
    }
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(UNMATCHED)) == 1
    assert db_session.get(Mailbox, mailbox.id).unmatched_count == 1


def test_a_jump_is_held_for_review_as_from_the_portal(db_session, imap_server, mailbox_of):
    device = samples.on_contract("VCF1")
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    db_session.commit()
    taken_at = s.at("2026-04-01")
    expected = validate_reading(device.id, taken_at, {"bw": 46_000, "color": 2_100}, source="email")
    assert expected.status == "pending_review"
    mailbox_of(imap_server)
    imap_server.append(
        samples.message(
            "Kyocera", samples.kyocera("VCF1", 46_000, 2_100, when="2026-04-01 14:00"), message_id="<jump@test>"
        )
    )
    jobs.poll_mailboxes()

    jump = stored("jump@test")
    reading = db_session.get(Reading, jump.reading_id)
    assert (jump.state, reading.status, reading.source) == ("pending_review", "pending_review", "email")
    assert reading.reason == expected.reason == jump.reason
    assert len(imap_server.messages(PROCESSED)) == 1


def test_a_counter_lower_than_the_last_is_refused_with_metering_s_reason(db_session, imap_server, mailbox_of):
    device = samples.on_contract("VCF1")
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    db_session.commit()
    mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 15_000, 2_100, message_id="<low@test>"))
    jobs.poll_mailboxes()

    low = stored("low@test")
    assert low.state == "refused" and low.reading_id is None and low.device_id == device.id
    assert "16,000" in low.reason
    assert [r.counters["bw"] for r in readings()] == [16_000]
    assert len(imap_server.messages(UNMATCHED)) == 1


def test_garbled_and_broken_emails_never_stop_the_poll_nor_write_a_reading(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox_of(imap_server)
    imap_server.append(b"\xff\xfe garbage that is no email at all \x00\x01\r\n")
    imap_server.append(samples.broken_base64("VCF1"))
    imap_server.append(samples.message("Other", "Please call me about the invoice.", message_id="<chat@test>"))
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<good@test>"))

    jobs.poll_mailboxes()

    assert [r.counters for r in readings()] == [{"bw": 11_850, "color": 2_310}]
    states = dict(db_session.execute(sa.select(CounterEmail.message_key, CounterEmail.state)).all())
    assert states["good@test"] == "read"
    assert states["chat@test"] == "unmatched"
    assert list(states.values()).count("unmatched") == 3
    assert all(row.reason for row in db_session.scalars(sa.select(CounterEmail).where(CounterEmail.state != "read")))
    assert imap_server.messages("INBOX") == []


def test_starttls_mailbox_is_read_too(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox_of(imap_server, security="starttls")
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    assert len(readings()) == 1


def test_without_move_the_message_is_copied_then_expunged(db_session, imap_server, mailbox_of, monkeypatch):
    samples.on_contract("VCF1")
    mailbox_of(imap_server)
    monkeypatch.setattr(imap_poll, "_capabilities", lambda imap: {"IMAP4REV1"})
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(PROCESSED)) == 1
    assert len(readings()) == 1


def test_wrong_password_is_the_mailbox_s_error_and_nothing_is_read(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server, password="wrong")
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    mailbox = db_session.get(Mailbox, mailbox.id)
    assert mailbox.last_error.startswith("The mail server refused the login")
    assert readings() == []
    assert len(imap_server.messages("INBOX")) == 1


def test_an_untrusted_certificate_is_refused(db_session, imap_server, mailbox_of, app, monkeypatch):
    mailbox = mailbox_of(imap_server)
    monkeypatch.setitem(app.config, "COPYDESK_IMAP_CA_FILE", None)
    jobs.poll_mailboxes()
    assert "certificate is not trusted" in db_session.get(Mailbox, mailbox.id).last_error


def test_an_unreachable_server_does_not_stop_the_other_mailboxes(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    good = mailbox_of(imap_server)
    down = Mailbox(name="Old", host="127.0.0.1", port=1, security="ssl", username="x")
    imap_poll.set_password(down, "x")
    db_session.add(down)
    db_session.commit()
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    assert db_session.get(Mailbox, down.id).last_error.startswith("The mail server cannot be reached")
    assert db_session.get(Mailbox, good.id).last_error is None
    assert len(readings()) == 1


def idna_report(serial: str) -> bytes:
    """A Kyocera report whose text part names charset idna (str.decode refuses errors="replace" for it) and whose
    attachment's RFC 2231 file name is in that charset too: Python's email package raises on both."""
    body = samples.kyocera(serial, 11_850, 2_310)
    return (
        "From: ecosys@dealer-client.test\r\nSubject: KYOCERA counter report\r\nMessage-ID: <idna@test>\r\n"
        "Date: Tue, 31 Mar 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=idna\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n"
        "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename*=idna''%FF\r\n\r\nx\r\n--b--\r\n"
    ).encode()


def test_a_message_python_cannot_decode_is_read_and_the_poll_goes_on(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    samples.on_contract("VCF2")
    mailbox_of(imap_server)
    imap_server.append(idna_report("VCF1"))
    imap_server.append(samples.kyocera_message("VCF2", 11_850, 2_310, message_id="<after@test>"))
    jobs.poll_mailboxes()
    assert stored("idna@test").state == "read"
    assert stored("after@test").state == "read"
    assert imap_server.messages("INBOX") == []


def test_a_message_that_breaks_the_reader_waits_in_the_queue(db_session, imap_server, mailbox_of, monkeypatch):
    from modules.metering_channels import email_profiles

    samples.on_contract("VCF1")
    samples.on_contract("CNB1", make="HP")
    mailbox_of(imap_server)
    original = email_profiles.Profile.parse

    def parse(profile, msg):
        if profile.name == "kyocera":
            raise RuntimeError("a layout nobody foresaw")
        return original(profile, msg)

    monkeypatch.setattr(email_profiles.Profile, "parse", parse)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<odd@test>"))
    imap_server.append(samples.message("HP", samples.hp("CNB1", 12_000, 2_500), message_id="<hp@test>"))
    jobs.poll_mailboxes()
    odd = stored("odd@test")
    assert (odd.state, odd.reason) == ("unmatched", "The message could not be read: see it in the queue.")
    assert stored("hp@test").state == "read"
    assert [r.counters for r in readings()] == [{"bw": 12_000, "color": 2_500}]
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(UNMATCHED)) == 1


def test_one_mailbox_whose_poll_breaks_does_not_stop_the_next(db_session, imap_server, mailbox_of, monkeypatch):
    samples.on_contract("VCF1")
    first = mailbox_of(imap_server, name="Broken")
    second = Mailbox(name="Counters", host=first.host, port=first.port, security="ssl", username=first.username)
    imap_poll.set_password(second, imap_server.password)
    db_session.add(second)
    db_session.commit()
    original = imap_poll.poll

    def poll(mailbox):
        if mailbox.name == "Broken":
            raise RuntimeError("boom")
        return original(mailbox)

    monkeypatch.setattr(imap_poll, "poll", poll)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    assert jobs.poll_mailboxes() == 1
    assert len(readings()) == 1


def test_a_password_that_is_not_ascii_logs_in(db_session, imap_server, mailbox_of):
    from tests.imap_server import UTF8_PASSWORD, UTF8_USER

    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server, password=UTF8_PASSWORD)
    mailbox.username = UTF8_USER
    db_session.commit()
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310), user=UTF8_USER)
    jobs.poll_mailboxes()
    assert db_session.get(Mailbox, mailbox.id).last_error is None
    assert len(readings()) == 1
    assert len(imap_server.messages(PROCESSED, user=UTF8_USER)) == 1


def test_folder_names_that_are_not_ascii_are_created_and_used(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox_of(imap_server, processed_folder="Copydesk/Letture è")
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    assert len(readings()) == 1
    assert len(imap_server.messages("Copydesk/Letture &AOg-")) == 1  # the name in IMAP's modified UTF-7
    assert imap_server.messages("INBOX") == []


def test_a_message_too_large_is_kept_by_its_header_and_moved_to_unmatched(
    db_session, imap_server, mailbox_of, monkeypatch
):
    samples.on_contract("VCF1")
    mailbox_of(imap_server)
    monkeypatch.setattr(emails, "MAX_RAW", 20_000)
    body = samples.kyocera("VCF1", 11_850, 2_310) + ("padding " * 10 + "\n") * 500
    big = samples.message("Kyocera", body, message_id="<big@test>")
    assert len(big) > 40_000
    imap_server.append(big)
    jobs.poll_mailboxes()
    big_email = stored("big@test")
    assert big_email.state == "unmatched" and big_email.reason.startswith("The message is too large to read")
    assert len(big_email.raw) < 2_000 and b"Message-ID: <big@test>" in big_email.raw
    assert readings() == []
    assert len(imap_server.messages(UNMATCHED)) == 1


def test_a_message_whose_move_failed_is_moved_at_the_next_poll(db_session, imap_server, mailbox_of, monkeypatch):
    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<stuck@test>"))
    move = imap_poll._move

    def broken(*args):
        raise imaplib.IMAP4.error("MOVE failed: over quota")

    monkeypatch.setattr(imap_poll, "_move", broken)
    jobs.poll_mailboxes()
    assert "over quota" in db_session.get(Mailbox, mailbox.id).last_error
    assert len(imap_server.messages("INBOX")) == 1
    monkeypatch.setattr(imap_poll, "_move", move)
    jobs.poll_mailboxes()
    assert imap_server.messages("INBOX") == []
    assert len(imap_server.messages(PROCESSED)) == 1
    assert len(readings()) == 1
    mailbox = db_session.get(Mailbox, mailbox.id)
    assert (mailbox.processed_count, mailbox.last_error) == (1, None)


def test_a_failed_fetch_stops_the_poll_and_the_next_reads_the_message(db_session, imap_server, mailbox_of, monkeypatch):
    samples.on_contract("VCF1")
    samples.on_contract("VCF2")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<first@test>"))
    imap_server.append(samples.kyocera_message("VCF2", 11_850, 2_310, message_id="<second@test>"))
    fetched = imap_poll._fetched
    calls = []

    def once_missing(data):
        calls.append(1)
        return (None, None) if len(calls) == 1 else fetched(data)

    monkeypatch.setattr(imap_poll, "_fetched", once_missing)
    jobs.poll_mailboxes()
    assert readings() == []  # the second message was not read past the first
    assert "did not give message" in db_session.get(Mailbox, mailbox.id).last_error
    jobs.poll_mailboxes()
    assert len(readings()) == 2
    assert imap_server.messages("INBOX") == []


def test_a_folder_the_server_refuses_to_create_reads_nothing(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server, unmatched_folder="~Unmatched")
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    jobs.poll_mailboxes()
    error = db_session.get(Mailbox, mailbox.id).last_error
    assert error.startswith("The mail server refuses to create the folder ~Unmatched")
    assert readings() == [] and db_session.scalars(sa.select(CounterEmail)).all() == []
    assert len(imap_server.messages("INBOX")) == 1


def test_a_mailbox_being_polled_is_not_polled_again_at_once(db_session, imap_server, mailbox_of, app):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("the poll lock is PostgreSQL's advisory lock")
    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    with imap_poll.exclusive(mailbox.id) as alone:  # the job's poll, running
        assert alone
        assert imap_poll.poll(db_session.get(Mailbox, mailbox.id)).busy
        assert readings() == []
    assert not imap_poll.poll(db_session.get(Mailbox, mailbox.id)).busy
    assert len(readings()) == 1


def test_only_the_allowed_senders_make_readings(db_session, imap_server, mailbox_of):
    samples.on_contract("VCF1")
    samples.on_contract("VCF2")
    mailbox_of(imap_server, allowed_senders="ecosys-m5526@dealer-client.test\n@printers.test")
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<ok@test>"))
    imap_server.append(
        samples.kyocera_message("VCF2", 11_850, 2_310, message_id="<forged@test>", sender="someone@elsewhere.test")
    )
    jobs.poll_mailboxes()
    assert stored("ok@test").state == "read"
    forged = stored("forged@test")
    assert forged.state == "unmatched" and forged.serial == "VCF2"
    assert (
        forged.reason
        == "someone@elsewhere.test is not among the senders mailbox Counters accepts counter reports from."
    )
    assert len(readings()) == 1
    assert emails.sender_allowed("a@printers.test, b.it", "x@b.it") and not emails.sender_allowed("b.it", "x@c.b.it")


def test_polls_write_no_audit_entry_and_no_secret(db_session, imap_server, mailbox_of):
    from core.models import AuditLog

    samples.on_contract("VCF1")
    mailbox = mailbox_of(imap_server)
    imap_server.append(samples.kyocera_message("VCF1", 11_850, 2_310))
    for _ in range(2):
        jobs.poll_mailboxes()
    entries = db_session.scalars(
        sa.select(AuditLog).where(
            AuditLog.object_type == "metering_channels_mailbox", AuditLog.object_id == str(mailbox.id)
        )
    ).all()
    assert [entry.action for entry in entries] == ["create"]
    assert entries[0].changes["password_sealed"] == "changed"
    assert db_session.get(Mailbox, mailbox.id).processed_count == 1
