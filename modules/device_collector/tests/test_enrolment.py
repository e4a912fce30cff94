"""Enrolment codes (once, 24 hours, the newest only), the certificate check the collector makes, revocation,
renewal in the last 30 days, and enrolling again after a revocation."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from core.clock import as_utc
from core.db import db
from core.models import User
from modules.device_accounting.tests import core_support as s
from modules.device_collector import enrolment, pki
from modules.device_collector.enrolment import EnrolmentRefused
from modules.device_collector.models import CollectorDevice, DeviceCertificate, EnrolmentCode
from modules.device_collector.simulator import make_csr
from modules.rentals.models import Device
from tests.query_counter import count_queries

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def machine(app, clock):
    with app.app_context():
        machine = s.device("KY1", s.customer())
        db.session.commit()
        return machine.id


def new_code(machine_id: int) -> str:
    _row, plain = enrolment.create_code(db.session.get(Device, machine_id), None)
    db.session.commit()
    return plain


def redeem(code: str, address: str | None = "10.0.0.7:50123") -> tuple[CollectorDevice, str, dt.datetime]:
    csr_pem, _key = make_csr()
    result = enrolment.redeem_code(code, csr_pem, address)
    db.session.commit()
    return result


def fingerprint_of(cert_pem: str) -> str:
    return pki.certificate_fingerprint(x509.load_pem_x509_certificate(cert_pem.encode()))


def refusal(code: str) -> str:
    with pytest.raises(EnrolmentRefused) as refused:
        redeem(code)
    db.session.rollback()
    assert refused.value.message
    return refused.value.reason


def test_a_code_enrols_the_device_once(app, machine):
    with app.app_context():
        staff = User(email="tecnico@example.com", name="Tecnico", role="back_office")
        db.session.add(staff)
        db.session.flush()
        row, plain = enrolment.create_code(db.session.get(Device, machine), staff)
        db.session.commit()
        assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", plain)
        assert as_utc(row.expires_at) == NOW + dt.timedelta(hours=24)
        assert row.created_by_id == staff.id
        # Only a digest is kept, never the code.
        stored = db.session.execute(sa.select(EnrolmentCode.__table__)).one()
        assert all(plain.replace("-", "") not in str(value) for value in stored)

        # Typed as a person would: lower case, spaces instead of dashes.
        collector_device, cert_pem, not_after = redeem(plain.lower().replace("-", " "))
        assert collector_device.device_id == machine
        assert not_after == NOW + dt.timedelta(days=365)
        used = db.session.get(EnrolmentCode, row.id)
        assert as_utc(used.used_at) == NOW and used.used_address == "10.0.0.7:50123"

        ca = x509.load_pem_x509_certificate(pki.ca_certificate_pem().encode())
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        PolicyBuilder().store(Store([ca])).build_client_verifier().verify(cert, [])
        assert enrolment.check_certificate(fingerprint_of(cert_pem)) == (collector_device, None)

        assert refusal(plain) == "code_used"
        assert refusal("ABCD-EFGH-JKMN-PQRS") == "code_unknown"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeviceCertificate)) == 1


def test_a_code_expires_after_24_hours(app, machine, clock):
    with app.app_context():
        late = new_code(machine)
        on_time = new_code(db.session.get(Device, s.device("KY2").id).id)
        clock.shift(dt.timedelta(hours=24) - dt.timedelta(seconds=1))
        assert redeem(on_time)[0].device.serial == "KY2"
        clock.shift(dt.timedelta(seconds=1))
        assert refusal(late) == "code_expired"


def test_a_new_code_voids_the_older_ones(app, machine):
    with app.app_context():
        first = new_code(machine)
        second = new_code(machine)
        assert refusal(first) == "code_expired"
        collector_device, _cert, _until = redeem(second)
        assert collector_device.device_id == machine


def test_a_bad_csr_leaves_the_code_usable(app, machine):
    with app.app_context():
        code = new_code(machine)
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.redeem_code(code, "not a csr", None)
        db.session.rollback()
        assert refused.value.reason == "bad_csr"
        assert redeem(code)[0].device_id == machine


def test_retired_devices_are_not_enrolled(app, machine):
    with app.app_context():
        code = new_code(machine)
        db.session.get(Device, machine).status = "retired"
        db.session.commit()
        assert refusal(code) == "device_retired"
        with pytest.raises(EnrolmentRefused):
            enrolment.create_code(db.session.get(Device, machine), None)


def test_check_certificate_refuses_unknown_revoked_and_expired_in_one_query(app, machine, clock):
    with app.app_context():
        collector_device, cert_pem, not_after = redeem(new_code(machine))
        fingerprint, device_id = fingerprint_of(cert_pem), collector_device.id
        db.session.expunge_all()
        with count_queries(app) as queries:
            found, problem = enrolment.check_certificate(fingerprint)
            assert found.device.serial == "KY1"  # loaded with it: no second query
        assert (problem, len(queries)) == (None, 1)

        assert enrolment.check_certificate(None) == (None, "not_enrolled")
        assert enrolment.check_certificate("0" * 64) == (None, "not_enrolled")

        clock.move_to(not_after)
        assert enrolment.check_certificate(fingerprint)[1] == "certificate_expired"
        clock.move_to(NOW)

        collector_device = db.session.get(CollectorDevice, device_id)
        staff = User(email="capo@example.com", name="Capo", role="back_office")
        db.session.add(staff)
        db.session.flush()
        enrolment.revoke(collector_device, "stolen", staff)
        db.session.commit()
        found, problem = enrolment.check_certificate(fingerprint)
        assert (found.id, problem) == (collector_device.id, "revoked")
        assert (found.revoked_reason, found.revoked_by_id) == ("stolen", staff.id)
        assert all(cert.revoked_at is not None for cert in found.certificates)


def test_renewal_only_in_the_last_30_days_gives_a_new_valid_certificate(app, machine, clock):
    with app.app_context():
        collector_device, old_pem, not_after = redeem(new_code(machine))
        old = fingerprint_of(old_pem)
        assert enrolment.renewal_due(collector_device, old) == (not_after, False)
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.renew(collector_device, old, make_csr()[0])
        assert refused.value.reason == "not_due"

        clock.move_to(not_after - dt.timedelta(days=31))
        assert enrolment.renewal_due(collector_device, old) == (not_after, False)
        clock.move_to(not_after - dt.timedelta(days=30))
        assert enrolment.renewal_due(collector_device, old) == (not_after, True)

        key = ec.generate_private_key(ec.SECP256R1())
        csr_pem, _key_pem = make_csr(key=key)
        new_pem, new_not_after = enrolment.renew(collector_device, old, csr_pem)
        db.session.commit()
        new_cert = x509.load_pem_x509_certificate(new_pem.encode())
        assert new_cert.public_key() == key.public_key()
        assert new_not_after == not_after - dt.timedelta(days=30) + dt.timedelta(days=365)
        new = fingerprint_of(new_pem)
        assert enrolment.check_certificate(new) == (collector_device, None)
        # The old one lasts until it expires (a device that lost the reply can come back to retry).
        assert enrolment.check_certificate(old) == (collector_device, None)
        assert enrolment.renewal_due(collector_device, new)[1] is False

        clock.move_to(not_after)
        assert enrolment.check_certificate(old)[1] == "certificate_expired"
        assert enrolment.check_certificate(new) == (collector_device, None)

        with pytest.raises(EnrolmentRefused) as refused:  # somebody else's fingerprint
            enrolment.renew(collector_device, "0" * 64, make_csr()[0])
        assert refused.value.reason == "not_enrolled"
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.renew(collector_device, new, "garbage")
        assert refused.value.reason in {"not_due", "bad_csr"}


def test_once_the_renewed_certificate_connects_the_old_one_is_revoked_and_renews_no_more(app, machine, clock):
    """A key stolen in its last 30 days cannot go on buying certificates after the device has moved on."""
    with app.app_context():
        collector_device, old_pem, not_after = redeem(new_code(machine))
        old = fingerprint_of(old_pem)
        clock.move_to(not_after - dt.timedelta(days=20))
        new = fingerprint_of(enrolment.renew(collector_device, old, make_csr()[0])[0])
        db.session.commit()
        assert enrolment.check_certificate(old) == (collector_device, None)  # until the new one is used

        enrolment.certificate_in_use(collector_device, new)  # the device's HELLO with its new certificate
        db.session.commit()
        assert enrolment.check_certificate(old) == (collector_device, "revoked")
        assert enrolment.check_certificate(new) == (collector_device, None)
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.renew(collector_device, old, make_csr()[0])
        assert refused.value.reason == "revoked"
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeviceCertificate)) == 2
        assert enrolment.current_certificate(collector_device).fingerprint == new


def test_a_renewal_whose_reply_was_lost_is_retried_and_leaves_one_new_certificate(app, machine, clock):
    with app.app_context():
        collector_device, old_pem, not_after = redeem(new_code(machine))
        old = fingerprint_of(old_pem)
        clock.move_to(not_after - dt.timedelta(days=20))
        lost = fingerprint_of(enrolment.renew(collector_device, old, make_csr()[0])[0])
        db.session.commit()
        clock.shift(dt.timedelta(minutes=5))
        retried = fingerprint_of(enrolment.renew(collector_device, old, make_csr()[0])[0])
        db.session.commit()

        assert enrolment.check_certificate(lost) == (collector_device, "revoked")  # never reached the device
        assert enrolment.check_certificate(retried) == (collector_device, None)
        assert enrolment.check_certificate(old) == (collector_device, None)
        enrolment.certificate_in_use(collector_device, retried)
        db.session.commit()
        assert [cert.fingerprint for cert in collector_device.certificates if cert.revoked_at is None] == [retried]


def test_a_retired_device_is_refused_as_revoked_in_the_same_query(app, machine):
    with app.app_context():
        collector_device, cert_pem, _until = redeem(new_code(machine))
        fingerprint, collector_id = fingerprint_of(cert_pem), collector_device.id
        db.session.get(Device, machine).status = "retired"
        db.session.commit()
        db.session.expunge_all()
        with count_queries(app) as queries:
            found, problem = enrolment.check_certificate(fingerprint)
        assert (found.id, problem, len(queries)) == (collector_id, "revoked", 1)


def test_a_revoked_device_enrols_again_with_a_new_code(app, machine):
    with app.app_context():
        collector_device, old_pem, _until = redeem(new_code(machine))
        enrolment.revoke(collector_device, "replaced", None)
        db.session.commit()

        again, new_pem, _until = redeem(new_code(machine))
        assert again.id == collector_device.id
        assert (again.revoked_at, again.revoked_reason, again.revoked_by_id) == (None, None, None)
        assert enrolment.check_certificate(fingerprint_of(new_pem)) == (again, None)
        assert enrolment.check_certificate(fingerprint_of(old_pem)) == (again, "revoked")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CollectorDevice)) == 1


def test_enrolling_again_retires_the_earlier_certificate(app, machine):
    with app.app_context():
        _device, first_pem, _until = redeem(new_code(machine))
        device, second_pem, _until = redeem(new_code(machine))
        assert enrolment.check_certificate(fingerprint_of(first_pem)) == (device, "revoked")
        assert enrolment.check_certificate(fingerprint_of(second_pem)) == (device, None)


def test_touch_records_what_the_device_said(app, machine, clock):
    with app.app_context():
        collector_device, _cert, _until = redeem(new_code(machine))
        assert collector_device.last_seen_at is None
        assert (collector_device.login_methods, collector_device.offline_max_jobs) == ("card,pin,password", 10000)
        clock.shift(dt.timedelta(minutes=3))
        enrolment.touch(
            collector_device, address="10.0.0.8:4000", firmware="2.1.0", protocol_version=1, capabilities=["card"]
        )
        db.session.commit()
        seen = db.session.get(CollectorDevice, collector_device.id)
        assert as_utc(seen.last_seen_at) == NOW + dt.timedelta(minutes=3)
        assert (seen.last_address, seen.firmware, seen.protocol_version) == ("10.0.0.8:4000", "2.1.0", 1)
        assert json.loads(seen.capabilities) == ["card"]
        enrolment.touch(seen)  # only the time changes
        assert seen.firmware == "2.1.0"
        assert str(seen) == str(seen.device)


def test_a_ca_first_made_in_the_middle_of_a_write_lasts(app, machine):
    """PostgreSQL: the first CA commits on its own, whatever the transaction that asked for it does."""
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("SQLite has one writer: there the CA joins the transaction already writing")
    with app.app_context():
        db.session.add(s.customer("Altro cliente"))
        db.session.flush()
        fingerprint = pki.ensure_ca().fingerprint
        db.session.rollback()
        assert pki.ensure_ca().fingerprint == fingerprint


def test_a_revoked_certificate_is_never_renewed(app, machine, clock):
    with app.app_context():
        collector_device, old_pem, not_after = redeem(new_code(machine))
        old = fingerprint_of(old_pem)
        clock.move_to(not_after - dt.timedelta(days=10))
        enrolment.revoke(collector_device, "stolen", None)
        db.session.commit()
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.renew(collector_device, old, make_csr()[0])
        assert refused.value.reason == "revoked"

        # Enrolled again: the device is back, but the stolen certificate still cannot buy a fresh one.
        again, _new_pem, _until = redeem(new_code(machine))
        with pytest.raises(EnrolmentRefused) as refused:
            enrolment.renew(again, old, make_csr()[0])
        db.session.rollback()
        assert refused.value.reason == "revoked"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeviceCertificate)) == 2


def test_revoking_voids_the_open_codes_of_the_device(app, machine):
    with app.app_context():
        collector_device, _pem, _until = redeem(new_code(machine))
        waiting = new_code(machine)  # made before the revocation, not yet used
        enrolment.revoke(db.session.get(CollectorDevice, collector_device.id), "stolen", None)
        db.session.commit()
        assert refusal(waiting) == "code_expired"
        assert enrolment.check_certificate(fingerprint_of(redeem(new_code(machine))[1]))[1] is None
