"""The device CA: created on first use, it issues the devices' client certificates and the collector's server
certificate; TLS 1.3 contexts for both ends. Keys at rest are sealed (core.crypto.seal); only `cryptography` signs."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask_babel import lazy_gettext as _l

from core.clock import as_utc
from core.crypto import seal, unseal
from core.db import db, insert_once, utcnow
from modules.device_collector.models import CollectorCA, ServerCertificate
from modules.rentals.models import Device

CA_ID = 1
CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
SERVER_RENEW_BEFORE = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)  # certificates start a little in the past: device clocks drift
CA_KEY_PURPOSE = "collector ca key"
SERVER_KEY_PURPOSE = "collector server key"
MIN_RSA_BITS = 2048
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
ALLOWED_CSR_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def fingerprint(der: bytes) -> str:
    """The SHA-256 of a certificate's DER, lowercase hex: how certificates are found."""
    return hashlib.sha256(der).hexdigest()


def display_fingerprint(hex_: str) -> str:
    """`AB:CD:...`: a fingerprint as people compare it on a device's screen."""
    upper = hex_.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


def private_key_pem(key, password: bytes | None = None) -> str:
    """`key` as PKCS#8 PEM, encrypted with `password` when given."""
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def _new_ca() -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Copydesk"),
            # A random suffix: two installations' CAs never share a name.
            x509.NameAttribute(NameOID.COMMON_NAME, f"Copydesk device CA {secrets.token_hex(4)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return {
        "id": CA_ID,
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key_sealed": seal(private_key_pem(key), CA_KEY_PURPOSE),
        "fingerprint": certificate_fingerprint(cert),
        "created_at": now,
    }


def ensure_ca() -> CollectorCA:
    """The installation's device CA, created (ECDSA P-256, ten years) and committed on first use. Concurrent first
    uses (two collectors starting) create one: the loser's insert is ignored and it reads the winner's."""
    ca = db.session.get(CollectorCA, CA_ID)
    if ca is not None:
        return ca
    insert_once(CollectorCA.__table__, _new_ca())
    ca = db.session.get(CollectorCA, CA_ID, populate_existing=True)
    assert ca is not None
    return ca


def ca_certificate_pem() -> str:
    return ensure_ca().certificate_pem


def _ca_material() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = ensure_ca()
    cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    key = serialization.load_pem_private_key(unseal(ca.key_sealed, CA_KEY_PURPOSE).encode(), password=None)
    return cert, key  # type: ignore[return-value]


def _refuse(message) -> Exception:
    from modules.device_collector.enrolment import EnrolmentRefused

    return EnrolmentRefused("bad_csr", message)


def _check_public_key(key) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise _refuse(_l("The key's curve is not accepted: use P-256 or P-384."))
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _refuse(_l("The RSA key is too short: use at least 2048 bits."))
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise _refuse(_l("The key type is not accepted: use EC P-256, P-384, RSA (2048 bits or more) or Ed25519."))


def load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    """The CSR, checked: well formed, signed by its own key with SHA-2 (or Ed25519), and a key strong enough."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        key = csr.public_key()
        signature_hash = csr.signature_hash_algorithm
        valid = csr.is_signature_valid
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
        raise _refuse(_l("The certificate signing request cannot be read.")) from None
    except UnsupportedAlgorithm:  # a key or hash cryptography does not know
        raise _refuse(_l("The certificate signing request uses an algorithm that is not accepted.")) from None
    _check_public_key(key)
    if signature_hash is not None and not isinstance(signature_hash, ALLOWED_CSR_HASHES):
        raise _refuse(_l("The certificate signing request must be signed with SHA-256 or stronger."))
    if not valid:
        raise _refuse(_l("The certificate signing request's signature is not valid."))
    return csr


def _key_usage(key) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # TLS 1.3 only signs with the key, but an RSA key used with older tooling may also encipher.
        key_encipherment=isinstance(key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(public_key, subject: x509.Name, usage, san: list[x509.GeneralName], lifetime: dt.timedelta):
    ca_cert, ca_key = _ca_material()
    now = utcnow()
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(public_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def issue_device_certificate(csr_pem: str, device: Device, days: int = 365) -> tuple[str, x509.Certificate]:
    """A client certificate (clientAuth) for `device` on the CSR's key; the subject is ours, not the CSR's.
    Raises EnrolmentRefused("bad_csr") for a CSR that fails load_csr's checks."""
    csr = load_csr(csr_pem)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Copydesk devices"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(device.id)),
            x509.NameAttribute(NameOID.COMMON_NAME, (device.serial or str(device.id))[:64]),
        ]
    )
    san = [x509.UniformResourceIdentifier(f"urn:copydesk:device:{device.id}")]
    cert = _leaf(csr.public_key(), subject, ExtendedKeyUsageOID.CLIENT_AUTH, san, dt.timedelta(days=days))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), cert


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def _new_server_certificate(key_names: str, hostnames: list[str]) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
    san = [_general_name(name) for name in hostnames]
    cert = _leaf(key.public_key(), subject, ExtendedKeyUsageOID.SERVER_AUTH, san, SERVER_LIFETIME)
    return {
        "hostnames": key_names,
        "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "key_sealed": seal(private_key_pem(key), SERVER_KEY_PURPOSE),
        "not_after": cert.not_valid_after_utc,
        "created_at": utcnow(),
    }


def server_certificate(hostnames: list[str]) -> ServerCertificate:
    """The newest server certificate for these names, issued (and committed) when none has 30 days left. Two
    instances issuing at once both store one; either serves, being from the same CA."""
    names = sorted({name.strip().lower() for name in hostnames if name and name.strip()})
    if not names:
        raise ValueError("a server certificate needs at least one host name")
    key_names = ",".join(names)
    query = (
        sa.select(ServerCertificate)
        .where(ServerCertificate.hostnames == key_names)
        .order_by(ServerCertificate.not_after.desc(), ServerCertificate.id.desc())
        .limit(1)
    )
    current = db.session.scalar(query)
    if current is None or as_utc(current.not_after) - utcnow() < SERVER_RENEW_BEFORE:
        ensure_ca()
        insert_once(ServerCertificate.__table__, _new_server_certificate(key_names, names))
        current = db.session.scalar(query.execution_options(populate_existing=True))
    assert current is not None
    return current


@contextmanager
def _chain_files(cert_pem: str, key) -> Iterator[tuple[str, str, bytes]]:
    """The certificate and its key in temporary files for SSLContext.load_cert_chain, the key encrypted with a
    one-time password (the ssl module only loads keys from files; the clear key never reaches the disk)."""
    password = secrets.token_bytes(32)
    encrypted = private_key_pem(key, password).encode()
    with tempfile.TemporaryDirectory(prefix="copydesk-tls-") as folder:
        cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        with open(cert_path, "w", encoding="ascii") as out:
            out.write(cert_pem)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(encrypted)
        yield cert_path, key_path, password


def load_cert_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    with _chain_files(cert_pem, key) as (cert_path, key_path, password):
        context.load_cert_chain(cert_path, key_path, password=password)


def _tls13(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


def server_ssl_context(
    hostnames: list[str], cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """The collector's TLS context: TLS 1.3 only, a client certificate optional (ENROL comes without one) but, when
    given, one the device CA issued. The server certificate is the shared one for `hostnames` unless files are given
    (an operator's own certificate; the devices must then trust its issuer)."""
    context = _tls13(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca_certificate_pem())
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    else:
        stored = server_certificate(hostnames)
        # The CA goes in the chain on purpose (not left to OpenSSL's auto-chaining): a device enrolling finds it
        # there by the fingerprint staff read out, before it sends the code.
        chain = stored.certificate_pem + ca_certificate_pem()
        load_cert_chain(context, chain, unseal(stored.key_sealed, SERVER_KEY_PURPOSE))
    return context


def client_ssl_context(
    ca_pem: str,
    cert_pem: str | None = None,
    key_pem: str | None = None,
    server_hostname_check: bool = True,
) -> ssl.SSLContext:
    """A device's TLS context: TLS 1.3 only, trusting `ca_pem` alone, with the device's certificate when enrolled."""
    context = _tls13(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.check_hostname = server_hostname_check
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca_pem)
    if cert_pem and key_pem:
        load_cert_chain(context, cert_pem, key_pem)
    return context
