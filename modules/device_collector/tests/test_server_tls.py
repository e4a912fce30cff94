"""TLS 1.3 with the installation's device CA: who gets in, who is refused at the handshake, at connect or between two
requests; enrolment over the wire; `flask device-collector` and its `ca` command."""

from __future__ import annotations

import datetime as dt
import logging
import re
import ssl

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.db import db
from modules.device_collector import enrolment, pki
from modules.device_collector.models import CollectorDevice
from modules.device_collector.simulator import make_csr
from modules.device_collector.tests.collector_support import (
    client_context,
    closed,
    connect_device,
    enrolled_office,
    hello_body,
    raw_tls,
    recv_frame,
    request,
    running_collector,
    send_frame,
)
from modules.rentals.models import Device


@pytest.fixture
def office(app):
    return enrolled_office(app)


def error_code(reply) -> str:
    assert reply is not None, "the collector closed without an ERROR frame"
    assert (reply["type"], reply["ok"]) == ("ERROR", False), reply
    return reply["body"]["code"]


def revoke(app, device_id: int) -> None:
    with app.app_context():
        collector_device = db.session.scalar(sa.select(CollectorDevice).where(CollectorDevice.device_id == device_id))
        enrolment.revoke(collector_device, "stolen", None)
        db.session.commit()


def foreign_credentials() -> tuple[str, str]:
    """A client certificate from a CA of someone else's making (right names, right usage, wrong issuer)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Copydesk device CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KY1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def test_an_enrolled_device_talks_tls_1_3_to_a_server_the_ca_vouches_for(app, office):
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)
        reply = request(sock, "HELLO", hello_body(office.serial))

        assert sock.version() == "TLSv1.3"
        assert reply["ok"] is True and reply["body"]["device"]["serial"] == office.serial
        assert reply["body"]["limits"]["idle_timeout"] == collector.server.idle_timeout
        sock.close()


def test_a_tls_1_2_client_is_refused_at_the_handshake(app, office, caplog):
    caplog.set_level(logging.INFO, logger="copydesk.collector")
    with running_collector(app) as collector:
        context = client_context(collector.ca_pem, office.cert_pem, office.key_pem, tls12=True)
        with pytest.raises(ssl.SSLError):
            raw_tls(collector.port, collector.ca_pem, context=context)
        connect_device(collector, office.serial, office.cert_pem, office.key_pem).close()
    assert "refused: code=tls_handshake" in caplog.text


def test_a_certificate_from_another_ca_is_refused_at_the_handshake(app, office, caplog):
    caplog.set_level(logging.INFO, logger="copydesk.collector")
    cert_pem, key_pem = foreign_credentials()
    with running_collector(app) as collector:
        # TLS 1.3: the client finishes its side first; the server's refusal arrives as an alert on the first read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            sock = raw_tls(collector.port, collector.ca_pem, cert_pem, key_pem)
            send_frame(sock, {"v": 1, "id": 1, "type": "HELLO", "body": hello_body(office.serial)})
            assert recv_frame(sock) is None
            raise ConnectionError("closed without an answer")
        connect_device(collector, office.serial, office.cert_pem, office.key_pem).close()
    assert re.search(r"refused: code=tls_handshake reason=\S*CERTIFICATE", caplog.text)


def test_a_client_without_certificate_gets_not_enrolled_for_anything_but_enrol(app, office):
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem)

        reply = request(sock, "HELLO", hello_body(office.serial), id_="h1")

        assert error_code(reply) == "not_enrolled" and reply["id"] == "h1"
        assert closed(sock)


def test_a_certificate_of_this_ca_that_no_enrolled_device_holds_is_refused_at_connect(app, office):
    with app.app_context():
        machine = db.session.get(Device, office.device_id)
        csr, key_pem = make_csr()
        cert_pem, _cert = pki.issue_device_certificate(csr, machine)  # signed, never recorded (a restored database)
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem, cert_pem, key_pem)

        reply = recv_frame(sock)

        assert error_code(reply) == "not_enrolled" and reply["id"] is None
        assert closed(sock)


def test_a_revoked_device_is_refused_at_connect(app, office, caplog):
    caplog.set_level(logging.INFO, logger="copydesk.collector")
    revoke(app, office.device_id)
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)

        reply = recv_frame(sock)

        assert error_code(reply) == "revoked" and reply["id"] is None
        assert closed(sock)
    assert f"refused: code=revoked type=None device_id={office.device_id} serial={office.serial}" in caplog.text


def test_a_device_revoked_between_two_requests_is_refused_at_once_and_disconnected(app, office):
    with running_collector(app) as collector:
        sock = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        assert request(sock, "HEARTBEAT")["ok"] is True

        revoke(app, office.device_id)
        reply = request(sock, "HEARTBEAT", id_=99)

        assert error_code(reply) == "revoked" and reply["id"] == 99
        assert closed(sock)
        again = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)
        assert error_code(recv_frame(again)) == "revoked"


def test_an_enrolled_device_must_say_hello_first(app, office):
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)

        first = request(sock, "IDENTIFY", {"card": office.card})
        then = request(sock, "HELLO", hello_body(office.serial))
        identified = request(sock, "IDENTIFY", {"card": office.card})

        assert error_code(first) == "hello_required"
        assert then["ok"] is True
        assert identified["body"]["identified"] is True and identified["body"]["user"]["id"] == office.user_id
        sock.close()


def test_enrolment_over_the_wire_gives_a_certificate_the_collector_then_accepts(app, office):
    with app.app_context():
        machine = db.session.get(Device, office.device_id)
        _row, code = enrolment.create_code(machine, None)
        db.session.commit()
    csr, key_pem = make_csr(office.serial)
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, collector.ca_pem)
        wrong = request(sock, "ENROL", {"code": "AAAA-BBBB-CCCC-DDDD", "csr": csr, "serial": office.serial})
        right = request(sock, "ENROL", {"code": code.lower(), "csr": csr, "serial": office.serial})
        sock.close()

        assert (error_code(wrong), wrong["body"]["reason"]) == ("enrolment_refused", "code_unknown")
        assert right["ok"] is True and right["body"]["ca_certificate"] == collector.ca_pem
        connect_device(collector, office.serial, right["body"]["certificate"], key_pem).close()


def test_flask_device_collector_help_and_ca(app):
    runner = app.test_cli_runner()

    helped = runner.invoke(args=["device-collector", "--help"])
    shown = runner.invoke(args=["device-collector", "ca"])

    assert helped.exit_code == 0, helped.output
    for option in ("--host", "--port", "--hostname", "--tls-cert", "--tls-key", "ca", "simulate"):
        assert option in helped.output
    assert shown.exit_code == 0, shown.output
    with app.app_context():
        ca = pki.ensure_ca()
        assert pki.display_fingerprint(ca.fingerprint) in shown.output
        assert ca.certificate_pem.strip() in shown.output
    simulate_help = runner.invoke(args=["device-collector", "simulate", "--help"])
    assert simulate_help.exit_code == 0 and "--offline-every" in simulate_help.output


def test_the_ca_the_operator_prints_is_the_one_devices_verify_the_collector_with(app, office):
    shown = app.test_cli_runner().invoke(args=["device-collector", "ca"]).output
    ca_pem = shown[shown.index("-----BEGIN CERTIFICATE-----") :]
    with running_collector(app) as collector:
        sock = raw_tls(collector.port, ca_pem, office.cert_pem, office.key_pem)
        assert request(sock, "HELLO", hello_body(office.serial))["ok"] is True
        sock.close()
        _other_cert, _other_key = foreign_credentials()
        with pytest.raises(ssl.SSLCertVerificationError):
            raw_tls(collector.port, _other_cert)
