"""The device CA: created once, issuing client certificates a TLS server accepts, refusing weak or forged requests;
the collector's TLS 1.3 contexts on a real socket."""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import socket
import ssl
import tempfile
import threading

import pytest
import sqlalchemy as sa
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from core.crypto import unseal
from core.db import db
from modules.device_accounting.tests import core_support as s
from modules.device_collector import pki
from modules.device_collector.enrolment import EnrolmentRefused
from modules.device_collector.models import CollectorCA, ServerCertificate
from modules.device_collector.simulator import make_csr
from modules.rentals.models import Device


@pytest.fixture
def machine(app):
    with app.app_context():
        machine = s.device("KY1", s.customer())
        db.session.commit()
        return machine.id


def test_display_fingerprint_groups_bytes():
    assert pki.fingerprint(b"x") == pki.fingerprint(b"x").lower()
    assert len(pki.fingerprint(b"x")) == 64
    assert pki.display_fingerprint("ab01cd") == "AB:01:CD"


def test_ca_is_created_once_when_collectors_start_together(app):
    barrier = threading.Barrier(6)
    fingerprints: list[str] = []

    def start() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                fingerprints.append(pki.ensure_ca().fingerprint)
            except Exception as error:  # reported by the assertion below
                fingerprints.append(f"error: {error!r}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    with app.app_context():
        rows = db.session.scalars(sa.select(CollectorCA)).all()
        assert len(rows) == 1
        assert fingerprints == [rows[0].fingerprint] * 6
        # Nobody committed: the CA lasts by itself.
        ca = x509.load_pem_x509_certificate(pki.ca_certificate_pem().encode())
        assert pki.certificate_fingerprint(ca) == rows[0].fingerprint
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=3649)
        # The private key is sealed at rest, and the seal opens to the CA's own key.
        assert "PRIVATE KEY" not in rows[0].key_sealed
        key = serialization.load_pem_private_key(unseal(rows[0].key_sealed, pki.CA_KEY_PURPOSE).encode(), None)
        assert key.public_key() == ca.public_key()


def test_issued_certificate_verifies_against_the_ca_for_client_auth(app, machine):
    with app.app_context():
        device = db.session.get(Device, machine)
        key = ec.generate_private_key(ec.SECP256R1())
        csr_pem, _key_pem = make_csr(key=key)
        cert_pem, cert = pki.issue_device_certificate(csr_pem, device, days=365)
        ca = x509.load_pem_x509_certificate(pki.ca_certificate_pem().encode())

    assert x509.load_pem_x509_certificate(cert_pem.encode()) == cert
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "KY1"
    verifier = PolicyBuilder().store(Store([ca])).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.chain[-1] == ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(VerificationError):  # a device certificate cannot serve as the collector's
        PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("KY1")).verify(cert, [])
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=365, minutes=5)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa-2048"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p-384"),
        pytest.param(lambda: ed25519.Ed25519PrivateKey.generate(), id="ed25519"),
    ],
)
def test_strong_keys_are_accepted(app, machine, key):
    with app.app_context():
        private = key()
        csr_pem, _key_pem = make_csr(key=private)
        _pem, cert = pki.issue_device_certificate(csr_pem, db.session.get(Device, machine))
    assert cert.public_key() == private.public_key()


def _forged(csr_pem: str) -> str:
    """The CSR with its signature's last byte changed."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    "csr",
    [
        pytest.param(lambda: _forged(make_csr()[0]), id="bad-signature"),
        pytest.param(lambda: make_csr(key=rsa.generate_private_key(65537, 1024))[0], id="rsa-1024"),
        pytest.param(lambda: make_csr(key=ec.generate_private_key(ec.SECP256K1()))[0], id="curve-secp256k1"),
        pytest.param(
            lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", id="garbage"
        ),
        pytest.param(lambda: "not a csr", id="not-pem"),
        pytest.param(lambda: make_csr(algorithm=hashes.SHA224())[0], id="sha-224"),
    ],
)
def test_bad_csrs_are_refused(app, machine, csr):
    with app.app_context():
        device = db.session.get(Device, machine)
        with pytest.raises(EnrolmentRefused) as refused:
            pki.issue_device_certificate(csr(), device)
    assert refused.value.reason == "bad_csr"
    assert refused.value.message


def _serve_once(context: ssl.SSLContext, listener: socket.socket, seen: dict) -> None:
    conn, _addr = listener.accept()
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            der = tls.getpeercert(binary_form=True)
            seen["fingerprint"] = pki.fingerprint(der) if der else None
            seen["version"] = tls.version()
            tls.sendall(b"ok")
    except (ssl.SSLError, OSError) as error:
        seen["error"] = error


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str = "localhost") -> tuple[dict, bytes]:
    """A real TLS connection on a local port: what the server saw and what the client read."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict = {}
    thread = threading.Thread(target=_serve_once, args=(server, listener, seen))
    thread.start()
    received = b""
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            received = tls.recv(2)
    except (ssl.SSLError, OSError) as error:
        seen["client_error"] = error
    thread.join(timeout=10)
    listener.close()
    return seen, received


def test_tls13_with_and_without_a_client_certificate(app, machine, tmp_path, monkeypatch):
    # A temporary folder of the test's own: other test runs on the machine make and remove theirs meanwhile.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with app.app_context():
        server = pki.server_ssl_context(["localhost", "127.0.0.1"])
        ca_pem = pki.ca_certificate_pem()
        csr_pem, device_key_pem = make_csr()
        cert_pem, cert = pki.issue_device_certificate(csr_pem, db.session.get(Device, machine))
        stored = db.session.scalars(sa.select(ServerCertificate)).one()
        assert "PRIVATE KEY" not in stored.key_sealed
        # The one-time files the ssl module needed are gone.
        assert glob.glob(os.path.join(tmp_path, "copydesk-tls-*")) == []

    seen, received = handshake(server, pki.client_ssl_context(ca_pem, cert_pem, device_key_pem))
    assert received == b"ok"
    assert seen == {"fingerprint": pki.certificate_fingerprint(cert), "version": "TLSv1.3"}

    # Without a certificate (ENROL): the server lets it in and sees no certificate.
    seen, received = handshake(server, pki.client_ssl_context(ca_pem))
    assert (received, seen["fingerprint"]) == (b"ok", None)

    # By IP address too (a name in the certificate).
    seen, received = handshake(server, pki.client_ssl_context(ca_pem), hostname="127.0.0.1")
    assert received == b"ok"

    # A host name the certificate does not name is refused by the device, unless it skips the check.
    seen, received = handshake(server, pki.client_ssl_context(ca_pem), hostname="collector.example.com")
    assert isinstance(seen["client_error"], ssl.SSLCertVerificationError)
    seen, received = handshake(
        server, pki.client_ssl_context(ca_pem, server_hostname_check=False), hostname="collector.example.com"
    )
    assert received == b"ok"


def test_tls12_and_foreign_certificates_are_refused(app, machine):
    with app.app_context():
        server = pki.server_ssl_context(["localhost"])
        ca_pem = pki.ca_certificate_pem()

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cadata=ca_pem)
    seen, received = handshake(server, old)
    assert received == b"" and "error" in seen

    # A certificate from another CA (a self-signed one) is refused at the handshake.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KY1")])
    now = dt.datetime.now(dt.UTC)
    foreign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    foreign_pem = foreign.public_bytes(serialization.Encoding.PEM).decode()
    client = pki.client_ssl_context(ca_pem, foreign_pem, pki.private_key_pem(key))
    seen, received = handshake(server, client)
    assert received == b"" and "error" in seen and "fingerprint" not in seen

    # And a client that does not trust this installation's CA refuses the collector.
    other = pki.client_ssl_context(foreign.public_bytes(serialization.Encoding.PEM).decode())
    seen, received = handshake(server, other)
    assert isinstance(seen["client_error"], ssl.SSLCertVerificationError)


def test_server_certificate_is_shared_and_renewed_30_days_before_expiry(app):
    with app.app_context():
        pki.server_ssl_context(["localhost", "127.0.0.1"])
        pki.server_ssl_context(["127.0.0.1", "LOCALHOST"])  # the same names, another order and case
        first = db.session.scalars(sa.select(ServerCertificate)).one()
        assert first.hostnames == "127.0.0.1,localhost"
        not_after = first.not_after.replace(tzinfo=dt.UTC) if first.not_after.tzinfo is None else first.not_after

    with time_machine.travel(not_after - dt.timedelta(days=31), tick=False), app.app_context():
        pki.server_ssl_context(["localhost", "127.0.0.1"])
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServerCertificate)) == 1

    with time_machine.travel(not_after - dt.timedelta(days=29), tick=False), app.app_context():
        renewed = pki.server_certificate(["localhost", "127.0.0.1"])
        assert renewed.id != first.id
        cert = x509.load_pem_x509_certificate(renewed.certificate_pem.encode())
        assert cert.not_valid_after_utc > not_after
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_the_server_sends_the_ca_a_device_finds_by_the_fingerprint_staff_read_out(app):
    """docs/device-protocol.md, enrolment step 4: before sending its code the device reads the server's chain
    without verifying it, takes the certificate whose SHA-256 is the fingerprint shown with the code, and then
    verifies the server with it."""
    with app.app_context():
        server = pki.server_ssl_context(["localhost"])
        ca = pki.ensure_ca()
        shown, ca_pem = pki.display_fingerprint(ca.fingerprint), ca.certificate_pem
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict = {}
    thread = threading.Thread(target=_serve_once, args=(server, listener, seen))
    thread.start()
    blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    blind.check_hostname, blind.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(listener.getsockname(), timeout=5) as raw,
        blind.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        chain = [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in tls._sslobj.get_unverified_chain()]
        tls.recv(2)
    thread.join(timeout=10)
    listener.close()

    wanted = shown.replace(":", "").lower()
    found = [der for der in chain if hashlib.sha256(der).hexdigest() == wanted]
    assert len(chain) == 2 and found == [chain[1]]
    assert ssl.DER_cert_to_PEM_cert(found[0]).strip() == ca_pem.strip()
    seen, received = handshake(server, pki.client_ssl_context(ssl.DER_cert_to_PEM_cert(found[0])))
    assert received == b"ok"
