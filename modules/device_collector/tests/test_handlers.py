"""What the collector answers to each message, called in process: settings, logins, authorisations, jobs, counters."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.db import db
from modules.device_accounting import users
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.models import PinAttempt, Transaction
from modules.device_accounting.tests import core_support as s
from modules.device_collector import enrolment, pki
from modules.device_collector.handlers import handle
from modules.device_collector.models import CollectorDevice, RefusedTransaction
from modules.device_collector.protocol import MAX_BATCH, DeviceSession, ProtocolError, validate_reply
from modules.device_collector.simulator import make_csr
from modules.metering.models import Reading

NOW = s.at("2026-03-02T10:00:00+01:00")
ADDRESS = "192.0.2.10:50123"


def fingerprint_of(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return pki.fingerprint(cert.public_bytes(serialization.Encoding.DER))


def ask(session: DeviceSession, type_: str, body: dict) -> dict:
    """The reply body, checked against the message's reply schema as a device would read it."""
    return validate_reply(type_, handle(session, type_, body))


def refused(session: DeviceSession, type_: str, body: dict) -> ProtocolError:
    with pytest.raises(ProtocolError) as error:
        handle(session, type_, body)
    validate_reply("ERROR", error.value.body())
    return error.value


def hello(session: DeviceSession, **fields) -> dict:
    body = {"protocol_version": 1, "serial": session.serial, "firmware": "2.4.1", "capabilities": ["card", "pin"]}
    return ask(session, "HELLO", {**body, **fields})


def job(seq: int, user=None, **fields) -> dict:
    """A finished job as the device sends it: 10 black-and-white A4 sides (no device_id: the certificate says)."""
    data = {
        "device_seq": seq,
        "function": "print",
        "sides_bw": 10,
        "sides_color": 0,
        "paper_size": "A4",
        "duplex": False,
        "status": "done",
        "document_name": "Contratto Rossi.pdf",
        "started_at": "2026-03-02T09:00:00+01:00",
        "ended_at": "2026-03-02T09:01:00+01:00",
    }
    if user is not None:
        data["user_id"] = user.id
    return {**data, **fields}


@pytest.fixture
def office(db_session):
    """Studio Bianchi with an enrolled, connected MFP, a print user with a card and a PIN, prices and a quota."""
    with time_machine.travel(NOW, tick=False):
        studio = s.customer()
        machine = s.device("KY 1", studio)
        center = s.cost_center(studio, "Amministrazione")
        user = s.print_user(studio, "mrossi", language="es", default_cost_center_id=center.id)
        users.add_card(user, "0004521")
        users.set_pin(user, "4321")
        s.simple_prices(bw="0.01", color="0.05")
        s.quota(user, "1.00")
        _code, plain = enrolment.create_code(machine, None)
        collector, cert_pem, _not_after = enrolment.redeem_code(plain, make_csr()[0], ADDRESS)
        db_session.commit()
    session = DeviceSession(
        address=ADDRESS,
        certificate_fingerprint=fingerprint_of(cert_pem),
        collector_device_id=collector.id,
        device_id=machine.id,
        serial=machine.serial,
    )
    return studio, machine, user, session


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


# --- enrolment ---------------------------------------------------------------------------------------------------


def test_enrol_gives_the_device_its_certificate_and_the_ca(db_session, clock):
    studio = s.customer()
    machine = s.device("KY 7", studio)
    _code, plain = enrolment.create_code(machine, None)
    wrong_device = refused(DeviceSession(ADDRESS), "ENROL", {"code": plain, "csr": make_csr()[0], "serial": "OTHER"})

    reply = ask(DeviceSession(ADDRESS), "ENROL", {"code": plain.lower(), "csr": make_csr()[0], "serial": "ky7"})
    db_session.commit()

    assert (wrong_device.code, list(wrong_device.details["fields"])) == ("invalid_message", ["serial"])
    certificate = x509.load_pem_x509_certificate(reply["certificate"].encode())
    assert reply["device"] == {"serial": machine.serial}
    assert reply["ca_certificate"] == pki.ca_certificate_pem()
    assert dt.datetime.fromisoformat(reply["expires_at"]) == certificate.not_valid_after_utc
    collector, problem = enrolment.check_certificate(fingerprint_of(reply["certificate"]))
    assert (collector.device_id, problem, collector.last_address) == (machine.id, None, ADDRESS)
    again = refused(DeviceSession(ADDRESS), "ENROL", {"code": plain, "csr": make_csr()[0]})
    assert (again.code, again.details["reason"], again.closes) == ("enrolment_refused", "code_used", False)
    unknown = refused(DeviceSession(ADDRESS), "ENROL", {"code": "AAAA-BBBB-CCCC-DDDD", "csr": make_csr()[0]})
    assert unknown.details["reason"] == "code_unknown"


def test_renewal_is_refused_until_the_last_30_days_then_gives_a_new_certificate(office):
    _studio, _machine, _user, session = office
    with time_machine.travel(NOW, tick=False):
        hello(session)
        early = refused(session, "RENEW", {"csr": make_csr()[0]})
    with time_machine.travel(NOW + dt.timedelta(days=340), tick=False):
        assert hello(session)["certificate"]["renew"] is True
        reply = ask(session, "RENEW", {"csr": make_csr()[0]})
    db.session.commit()

    assert (early.code, early.details["reason"], list(early.details["fields"])) == (
        "invalid_message",
        "not_due",
        ["csr"],
    )
    expires = dt.datetime.fromisoformat(reply["expires_at"])
    assert expires - (NOW + dt.timedelta(days=340)) > dt.timedelta(days=364)
    assert enrolment.check_certificate(fingerprint_of(reply["certificate"]))[1] is None


def test_a_revoked_certificate_or_one_a_used_renewal_replaced_gets_error_revoked(office):
    _studio, machine, _user, session = office
    with time_machine.travel(NOW + dt.timedelta(days=340), tick=False):
        hello(session)
        reply = ask(session, "RENEW", {"csr": make_csr()[0]})
        renewed = DeviceSession(
            address=ADDRESS,
            certificate_fingerprint=fingerprint_of(reply["certificate"]),
            collector_device_id=session.collector_device_id,
            device_id=machine.id,
            serial=machine.serial,
        )
        hello(renewed)  # the device's next connection, with its new certificate
        replaced = refused(session, "RENEW", {"csr": make_csr()[0]})
        enrolment.revoke(db.session.get(CollectorDevice, session.collector_device_id), "stolen", None)
        revoked = refused(renewed, "RENEW", {"csr": make_csr()[0]})
    assert (replaced.code, replaced.closes) == ("revoked", True)
    assert (revoked.code, revoked.closes) == ("revoked", True)


# --- HELLO and HEARTBEAT -----------------------------------------------------------------------------------------


def test_hello_answers_the_device_settings_and_records_what_it_says(office, clock):
    studio, _machine, _user, session = office
    save_settings(studio.id, {"hide_document_names": True})
    db.session.get(CollectorDevice, session.collector_device_id).login_methods = "card,pin"

    reply = hello(session, language="it-IT", protocol_version=3, capabilities=["card", "pin", "duplex"])
    db.session.commit()

    assert reply["protocol_version"] == 1 and session.hello_done and session.language == "it"
    assert reply["device"] == {"serial": "KY1", "model": "Kyocera TASKalfa 2554ci", "customer": "Studio Bianchi"}
    assert reply["login_methods"] == ["card", "pin"]
    assert reply["privacy"] == {"hide_document_names": True}
    assert reply["offline"] == {"max_jobs": 10000, "max_hours": 72}
    assert reply["meters"] == [{"code": "bw", "label": "Bianco e nero"}, {"code": "color", "label": "Colore"}]
    assert reply["limits"] == {"max_frame": 1_048_576, "max_batch": MAX_BATCH, "idle_timeout": 60.0}
    assert reply["certificate"]["renew"] is False
    assert dt.datetime.fromisoformat(reply["server_time"]) == NOW
    collector = db.session.get(CollectorDevice, session.collector_device_id, populate_existing=True)
    assert (collector.firmware, json.loads(collector.capabilities), collector.protocol_version) == (
        "2.4.1",
        ["card", "pin", "duplex"],
        1,
    )
    assert (collector.last_address, collector.last_seen_at.replace(tzinfo=dt.UTC)) == (ADDRESS, NOW)


def test_hello_refuses_another_serial_and_nothing_but_hello_comes_first(office, clock):
    _studio, _machine, _user, session = office

    first = refused(session, "IDENTIFY", {"card": "0004521"})
    wrong = refused(session, "HELLO", {"protocol_version": 1, "serial": "XX9", "firmware": "1", "capabilities": []})
    stranger = refused(DeviceSession(ADDRESS), "HELLO", {"protocol_version": 1, "serial": "KY1", "firmware": "1"})

    assert first.code == "hello_required"
    assert (wrong.code, list(wrong.details["fields"])) == ("invalid_message", ["serial"]) and not session.hello_done
    assert "KY1" in wrong.message
    assert (stranger.code, stranger.closes) == ("not_enrolled", True)
    assert refused(session, "NOPE", {}).code == "unknown_message"


def test_heartbeat_notes_the_device_seen_at_most_once_a_minute(office, clock):
    _studio, _machine, _user, session = office
    hello(session)

    def last_seen() -> dt.datetime:
        db.session.commit()
        return db.session.get(CollectorDevice, session.collector_device_id).last_seen_at.replace(tzinfo=dt.UTC)

    clock.shift(dt.timedelta(seconds=30))
    reply = ask(session, "HEARTBEAT", {})
    assert (dt.datetime.fromisoformat(reply["server_time"]), last_seen()) == (NOW + dt.timedelta(seconds=30), NOW)
    clock.shift(dt.timedelta(seconds=31))
    ask(session, "HEARTBEAT", {})
    assert last_seen() == NOW + dt.timedelta(seconds=61)


# --- IDENTIFY ----------------------------------------------------------------------------------------------------


def test_identify_by_card_answers_the_user_cost_centers_privileges_and_balance(office, clock):
    _studio, _machine, user, session = office
    hello(session)

    reply = ask(session, "IDENTIFY", {"card": "0004521"})

    assert reply["identified"] is True
    assert reply["user"] == {
        "id": user.id,
        "username": "mrossi",
        "full_name": "Mrossi",
        "language": "es",
        "default_cost_center_id": user.default_cost_center_id,
    }
    assert [center["name"] for center in reply["cost_centers"]] == ["Amministrazione"]
    assert reply["privileges"]["color_allowed"] is True
    assert (reply["balance"], reply["overdraft"]) == ("1.0000", "0.0000")


def test_wrong_pins_count_towards_the_lockout_and_refusals_speak_the_users_language(office, clock):
    _studio, _machine, user, session = office
    hello(session, language="it")

    unknown = ask(session, "IDENTIFY", {"card": "999"})
    answers = []
    for _ in range(5):
        answers.append(ask(session, "IDENTIFY", {"pin": "0000", "username": "mrossi"}))
        db.session.commit()  # as the server does after every reply: the wrong PIN stays counted
    right_pin_now = ask(session, "IDENTIFY", {"pin": "4321", "username": "mrossi"})

    assert (unknown["reason"], unknown["message"]) == ("unknown_card", "Tessera non riconosciuta.")
    assert [answer["reason"] for answer in answers] == ["wrong_pin"] * 4 + ["pin_locked"]
    assert answers[0]["message"] == "PIN incorrecto."  # mrossi reads Spanish
    assert dt.datetime.fromisoformat(answers[-1]["locked_until"]) == NOW + dt.timedelta(minutes=15)
    assert (right_pin_now["identified"], right_pin_now["reason"]) == (False, "pin_locked")
    assert db.session.get(type(user), user.id).pin_locked_until is not None
    clock.shift(dt.timedelta(minutes=16))
    assert ask(session, "IDENTIFY", {"pin": "4321"})["user"]["id"] == user.id


def test_a_pin_alone_at_the_device_is_counted_and_locks_pin_entry(office, clock):
    _studio, machine, _user, session = office
    hello(session)

    reasons = []
    for _ in range(5):
        reasons.append(ask(session, "IDENTIFY", {"pin": "1111"})["reason"])
        db.session.commit()

    assert reasons == ["wrong_pin"] * 4 + ["pin_locked"]
    assert db.session.scalar(sa.select(sa.func.count()).where(PinAttempt.device_id == machine.id)) == 5


def test_a_login_method_the_device_does_not_offer_is_refused(office, clock):
    _studio, _machine, user, session = office
    db.session.get(CollectorDevice, session.collector_device_id).login_methods = "card"
    db.session.commit()
    hello(session, language="en")

    by_pin = ask(session, "IDENTIFY", {"pin": "4321"})
    by_password = ask(session, "IDENTIFY", {"username": "mrossi", "password": "secret secret"})

    assert (by_pin["identified"], by_pin["reason"]) == (False, "method_not_allowed")
    assert by_password["reason"] == "method_not_allowed"
    assert ask(session, "IDENTIFY", {"card": "0004521"})["user"]["id"] == user.id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PinAttempt)) == 0


def test_identify_with_a_bad_combination_names_the_field(office, clock):
    _studio, _machine, _user, session = office
    hello(session)

    error = refused(session, "IDENTIFY", {"username": "mrossi"})

    assert (error.code, list(error.details["fields"])) == ("invalid_message", ["password"])


# --- AUTHORIZE ---------------------------------------------------------------------------------------------------


def authorize(session: DeviceSession, user, **fields) -> dict:
    body = {"user_id": user.id, "function": "print", "sides_bw": 10, "sides_color": 0, "paper_size": "A4"}
    return ask(session, "AUTHORIZE", {**body, "duplex": False, **fields})


def test_authorize_allows_a_job_the_quota_covers_and_says_how_much_of_one_it_does_not(office, clock):
    _studio, _machine, user, session = office
    hello(session)

    allowed = authorize(session, user)
    partly = authorize(session, user, sides_bw=0, sides_color=30)

    assert allowed == {"allowed": True, "balance": "1.0000", "cost": "0.1000"}
    assert (partly["allowed"], partly["reason"], partly["allowed_sides"]) == (False, "quota_exceeded", 20)
    assert partly["message"] == "Su cuota de impresión cubre 20 caras de este trabajo."
    assert partly["cost"] == "1.5000"


def test_authorize_with_a_user_of_another_customer_names_the_field(office, clock):
    _studio, _machine, _user, session = office
    other = s.print_user(s.customer("Farmacia Verdi"), "lverdi")
    hello(session)

    error = refused(session, "AUTHORIZE", {"user_id": other.id, "function": "print", "sides_bw": 1, "sides_color": 0})

    assert (error.code, list(error.details["fields"])) == ("invalid_message", ["user_id"])


# --- TXN ---------------------------------------------------------------------------------------------------------


def test_txn_stores_each_job_once_and_keeps_the_refused_ones_for_staff(office, clock):
    _studio, machine, user, session = office
    stranger = s.print_user(s.customer("Farmacia Verdi"), "lverdi")
    hello(session)
    batch = [job(1, user), job(2, user, sides_bw=0, sides_color=4), job(3, stranger), job(4)]

    first = ask(session, "TXN", {"transactions": batch})
    db.session.commit()
    resent = ask(session, "TXN", {"transactions": [*batch, job(5, user)]})
    db.session.commit()

    assert [(r["device_seq"], r["status"]) for r in first["results"]] == [
        (1, "stored"),
        (2, "stored"),
        (3, "refused"),
        (4, "stored"),
    ]
    assert (first["stored"], first["duplicates"], first["refused"]) == (3, 0, 1)
    assert [r.get("cost") for r in first["results"]] == ["0.1000", "0.2000", None, "0.1000"]
    assert list(first["results"][2]["errors"]) == ["user_id"]
    assert [r["status"] for r in resent["results"]] == ["duplicate"] * 2 + ["refused", "duplicate", "stored"]
    assert [r.get("transaction_id") for r in resent["results"][:2]] == [
        r["transaction_id"] for r in first["results"][:2]
    ]
    assert (resent["stored"], resent["duplicates"], resent["refused"]) == (1, 3, 1)
    assert [(tx.device_id, tx.device_seq) for tx in s.transactions()] == [(machine.id, n) for n in (1, 2, 4, 5)]
    kept = db.session.scalars(sa.select(RefusedTransaction)).all()
    assert [(row.collector_device_id, row.device_seq) for row in kept] == [(session.collector_device_id, 3)]
    payload = json.loads(kept[0].payload)
    assert payload["user_id"] == stranger.id and "document_name" not in payload
    assert list(json.loads(kept[0].errors)) == ["user_id"]


def test_txn_never_takes_the_device_from_the_body(office, clock):
    studio, _machine, user, session = office
    other = s.device("KY2", studio)
    hello(session)

    reply = handle(session, "TXN", {"transactions": [{**job(1, user), "device_id": other.id}]})

    assert reply["results"][0]["status"] == "stored"
    assert db.session.get(Transaction, reply["results"][0]["transaction_id"]).device_id == session.device_id


# --- COUNTERS ----------------------------------------------------------------------------------------------------


def test_counters_reach_metering_as_a_reading_from_the_device(office, clock):
    _studio, machine, _user, session = office
    hello(session, language="it")

    reply = ask(session, "COUNTERS", {"taken_at": "2026-03-02T09:55:00+01:00", "counters": {"bw": 12345}})
    db.session.commit()
    again = ask(session, "COUNTERS", {"taken_at": "2026-03-02T09:55:00+01:00", "counters": {"bw": 12345}})

    reading = db.session.get(Reading, reply["reading_id"])
    assert (reading.device_id, reading.source, reading.status, reading.counters) == (
        machine.id,
        "device",
        "accepted",
        {"bw": 12345},
    )
    assert reply["status"] == "accepted" and reply["warnings"] == ["Contatore non indicato per: color."]
    assert again["reading_id"] == reading.id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Reading)) == 1


def test_refused_counters_name_the_field(office, clock):
    _studio, _machine, _user, session = office
    hello(session)
    ask(session, "COUNTERS", {"taken_at": "2026-03-01T18:00:00+01:00", "counters": {"bw": 5000, "color": 900}})
    db.session.commit()

    lower = refused(session, "COUNTERS", {"taken_at": "2026-03-02T09:00:00+01:00", "counters": {"bw": 4000}})
    unknown = refused(session, "COUNTERS", {"taken_at": "2026-03-02T09:00:00+01:00", "counters": {"scan": 10}})
    future = refused(session, "COUNTERS", {"taken_at": "2026-03-03T09:00:00+01:00", "counters": {"bw": 6000}})

    assert (lower.code, list(lower.details["fields"])) == ("invalid_message", ["counters.bw"])
    assert "4000" in lower.details["fields"]["counters.bw"] or "4,000" in lower.details["fields"]["counters.bw"]
    assert list(unknown.details["fields"]) == ["counters.scan"]
    assert list(future.details["fields"]) == ["taken_at"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Reading)) == 1
