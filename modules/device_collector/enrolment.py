"""Enrolment: one-time codes staff hand to a device, redeemed with a CSR for its certificate; renewal, revocation,
the certificate check the collector makes on every connection and request, and the states of devices and codes the
back office shows. Nothing here commits."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import joinedload

from core.clock import as_utc
from core.crypto import keyed_digest
from core.db import db, utcnow
from core.models import User
from modules.device_collector import pki
from modules.device_collector.models import CollectorDevice, DeviceCertificate, EnrolmentCode
from modules.rentals.models import Device

CODE_LIFETIME = dt.timedelta(hours=24)
RENEW_WINDOW = dt.timedelta(days=30)
CERTIFICATE_DAYS = 365
CODE_DIGEST_PURPOSE = "collector enrolment code"
# No 0/O, 1/I/L, U: a code read aloud or typed from a screen is not mistaken.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_GROUPS, CODE_GROUP_SIZE = 4, 4  # 16 characters: about 78 bits
STALE_AFTER = dt.timedelta(days=1)
REASONS = (
    "code_unknown",
    "code_expired",
    "code_used",
    "bad_csr",
    "device_retired",
    "not_due",
    "not_enrolled",
    "revoked",
)


class EnrolmentRefused(Exception):
    """An enrolment or renewal refused: `reason` (a stable code, REASONS) and a human `message` in the current
    language (it is translated when read, so the caller can pick the device's language)."""

    def __init__(self, reason: str, message) -> None:
        assert reason in REASONS, reason
        super().__init__(reason)
        self.reason = reason
        self._message = message

    @property
    def message(self) -> str:
        return str(self._message)


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").upper()


def _digest(code: str) -> str:
    return keyed_digest(_normalise(code), CODE_DIGEST_PURPOSE)


def _check_device(device: Device) -> None:
    if device.status == "retired":
        raise EnrolmentRefused("device_retired", _l("The device is retired: it cannot be enrolled."))


def _void_open_codes(device_id: int, now: dt.datetime) -> None:
    db.session.execute(
        sa.update(EnrolmentCode)
        .where(EnrolmentCode.device_id == device_id, EnrolmentCode.used_at.is_(None), EnrolmentCode.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def create_code(device: Device, actor: User | None) -> tuple[EnrolmentCode, str]:
    """A new enrolment code for `device`, valid for CODE_LIFETIME and once; returns the row and the code itself
    (`XXXX-XXXX-XXXX-XXXX`), which is shown once and never stored. The device's earlier open codes stop working."""
    _check_device(device)
    now = utcnow()
    _void_open_codes(device.id, now)
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_SIZE))
    plain = "-".join(raw[i : i + CODE_GROUP_SIZE] for i in range(0, len(raw), CODE_GROUP_SIZE))
    code = EnrolmentCode(
        device_id=device.id,
        device=device,
        code_digest=_digest(plain),
        created_by_id=actor.id if actor is not None else None,
        created_at=now,
        expires_at=now + CODE_LIFETIME,
    )
    db.session.add(code)
    db.session.flush()
    return code, plain


def _record_certificate(collector_device: CollectorDevice, cert) -> DeviceCertificate:
    row = DeviceCertificate(
        collector_device=collector_device,
        serial=format(cert.serial_number, "x"),
        fingerprint=pki.certificate_fingerprint(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issued_at=utcnow(),
    )
    db.session.add(row)
    return row


def redeem_code(code: str, csr_pem: str, address: str | None) -> tuple[CollectorDevice, str, dt.datetime]:
    """Enrol the code's device with the CSR's key: returns the collector device, the certificate (PEM) and its expiry.

    The code is compared without case, dashes or spaces. A bad CSR leaves the code usable. Re-enrolling revokes the
    device's earlier certificates and clears a revocation (the old certificates stay revoked)."""
    pki.ensure_ca()  # before any write: a first CA commits on its own connection
    row = db.session.scalar(
        sa.select(EnrolmentCode)
        .options(joinedload(EnrolmentCode.device))
        .where(EnrolmentCode.code_digest == _digest(code))
        .with_for_update(of=EnrolmentCode)
    )
    now = utcnow()
    if row is None:
        raise EnrolmentRefused("code_unknown", _l("This enrolment code is not known."))
    if row.used_at is not None:
        raise EnrolmentRefused("code_used", _l("This enrolment code has been used already."))
    if as_utc(row.expires_at) <= now:
        raise EnrolmentRefused("code_expired", _l("This enrolment code has expired: ask for a new one."))
    device = row.device
    _check_device(device)
    cert_pem, cert = pki.issue_device_certificate(csr_pem, device, days=CERTIFICATE_DAYS)

    # Claimed with a guarded UPDATE: of two devices racing with one code, one wins.
    claimed = db.session.execute(
        sa.update(EnrolmentCode)
        .where(EnrolmentCode.id == row.id, EnrolmentCode.used_at.is_(None))
        .values(used_at=now, used_address=address[:60] if address else None)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise EnrolmentRefused("code_used", _l("This enrolment code has been used already."))
    db.session.refresh(row)

    collector_device = db.session.scalar(
        sa.select(CollectorDevice).where(CollectorDevice.device_id == device.id).with_for_update()
    )
    if collector_device is None:
        collector_device = CollectorDevice(device_id=device.id, device=device, enrolled_at=now)
        db.session.add(collector_device)
        db.session.flush()
    else:
        _revoke_certificates(collector_device, now)
        collector_device.enrolled_at = now
        collector_device.revoked_at = None
        collector_device.revoked_reason = None
        collector_device.revoked_by_id = None
    if address:
        collector_device.last_address = address[:60]
    _record_certificate(collector_device, cert)
    db.session.flush()
    return collector_device, cert_pem, cert.not_valid_after_utc


def _certificate_of(collector_device: CollectorDevice, fingerprint: str) -> DeviceCertificate:
    """The device's certificate `fingerprint`, neither revoked nor the device's revoked; else EnrolmentRefused."""
    wanted = (fingerprint or "").lower()
    cert = next((cert for cert in collector_device.certificates if cert.fingerprint == wanted), None)
    if cert is None:
        raise EnrolmentRefused("not_enrolled", _l("This certificate was not issued to this device."))
    if cert.revoked_at is not None or collector_device.revoked_at is not None:
        # The server checks before every request too; renewing must never outlive a revocation.
        raise EnrolmentRefused("revoked", _l("This certificate is revoked: the device must be enrolled again."))
    return cert


def renewal_due(collector_device: CollectorDevice, fingerprint: str) -> tuple[dt.datetime, bool]:
    """When the certificate `fingerprint` of the device expires, and whether it may be renewed now (RENEW_WINDOW)."""
    expires_at = as_utc(_certificate_of(collector_device, fingerprint).not_after)
    return expires_at, expires_at - utcnow() <= RENEW_WINDOW


def certificate_in_use(collector_device: CollectorDevice, fingerprint: str) -> None:
    """The device connected with its certificate `fingerprint` (HELLO): the older ones it still holds are revoked,
    as the renewal they were kept for has arrived; from now on only this one (or a renewal of it) works."""
    cert = _certificate_of(collector_device, fingerprint)
    now = utcnow()
    for older in collector_device.certificates:
        if older.id < cert.id and older.revoked_at is None:
            older.revoked_at = now


def renew(collector_device: CollectorDevice, fingerprint: str, csr_pem: str) -> tuple[str, dt.datetime]:
    """A new certificate for the device on the CSR's key, when its certificate `fingerprint` has RENEW_WINDOW or
    less left. Only the device's newest certificate renews: one that a newer certificate has connected after is
    revoked (certificate_in_use). The newer ones an older certificate finds never connected (the device lost the
    reply and retries), so they are revoked for the new one: a stolen key holds at most one certificate more."""
    cert = _certificate_of(collector_device, fingerprint)
    if as_utc(cert.not_after) - utcnow() > RENEW_WINDOW:
        raise EnrolmentRefused("not_due", _l("The certificate can be renewed only in its last 30 days."))
    _check_device(collector_device.device)
    unused = [newer for newer in collector_device.certificates if newer.id > cert.id and newer.revoked_at is None]
    cert_pem, issued = pki.issue_device_certificate(csr_pem, collector_device.device, days=CERTIFICATE_DAYS)
    now = utcnow()
    for newer in unused:
        newer.revoked_at = now
    _record_certificate(collector_device, issued)
    db.session.flush()
    return cert_pem, issued.not_valid_after_utc


def _revoke_certificates(collector_device: CollectorDevice, now: dt.datetime) -> None:
    for cert in collector_device.certificates:
        if cert.revoked_at is None:
            cert.revoked_at = now


def revoke(collector_device: CollectorDevice, reason: str, actor: User | None) -> None:
    """Revoke the device and every certificate it holds: its next request is refused. Its open enrolment codes stop
    working too, so only a code made after the revocation brings it back."""
    now = utcnow()
    collector_device.revoked_at = now
    collector_device.revoked_reason = (reason or "").strip()[:200] or None
    collector_device.revoked_by_id = actor.id if actor is not None else None
    _revoke_certificates(collector_device, now)
    _void_open_codes(collector_device.device_id, now)
    db.session.flush()


def check_certificate(fingerprint: str | None) -> tuple[CollectorDevice | None, str | None]:
    """Who presents the certificate `fingerprint`: (device, None) when valid; (None, "not_enrolled") for none or one
    never issued; (device, "revoked") when the device or the certificate is revoked or the device retired;
    (device, "certificate_expired"). One query (the rentals device comes along)."""
    if not fingerprint:
        return None, "not_enrolled"
    found = db.session.execute(
        sa.select(CollectorDevice, DeviceCertificate.revoked_at, DeviceCertificate.not_after)
        .join(DeviceCertificate, DeviceCertificate.collector_device_id == CollectorDevice.id)
        .options(joinedload(CollectorDevice.device))
        .where(DeviceCertificate.fingerprint == fingerprint.lower())
    ).first()
    if found is None:
        return None, "not_enrolled"
    collector_device, cert_revoked_at, not_after = found
    retired = collector_device.device.status == "retired"
    if collector_device.revoked_at is not None or cert_revoked_at is not None or retired:
        return collector_device, "revoked"
    if as_utc(not_after) <= utcnow():
        return collector_device, "certificate_expired"
    return collector_device, None


def touch(
    collector_device: CollectorDevice,
    *,
    address: str | None = None,
    firmware: str | None = None,
    protocol_version: int | None = None,
    capabilities: list[str] | None = None,
) -> None:
    """Note that the device was seen now, and what it said about itself (only what is given changes)."""
    collector_device.last_seen_at = utcnow()
    if address is not None:
        collector_device.last_address = address[:60]
    if firmware is not None:
        collector_device.firmware = firmware[:100]
    if protocol_version is not None:
        collector_device.protocol_version = protocol_version
    if capabilities is not None:
        collector_device.capabilities = json.dumps(list(capabilities))


# A device's state and a code's, worked out the same way in Python (a page) and in SQL (the filters, the dashboard).


def stale_cutoff() -> dt.datetime:
    return utcnow() - STALE_AFTER


def device_state(enrolled: CollectorDevice, cutoff: dt.datetime | None = None) -> str:
    """ "revoked"; "stale" when nothing was heard for a day (since enrolment, if it never connected); "never" within
    the first day without a connection; else "enrolled"."""
    cutoff = cutoff or stale_cutoff()
    if enrolled.revoked_at is not None:
        return "revoked"
    heard = enrolled.last_seen_at or enrolled.enrolled_at
    if as_utc(heard) < cutoff:
        return "stale"
    return "never" if enrolled.last_seen_at is None else "enrolled"


def state_condition(state: str, cutoff: dt.datetime | None = None) -> Any:
    """The SQL condition of device_state(...) == `state` on CollectorDevice."""
    cutoff = cutoff or stale_cutoff()
    live = CollectorDevice.revoked_at.is_(None)
    heard = sa.func.coalesce(CollectorDevice.last_seen_at, CollectorDevice.enrolled_at)
    return {
        "revoked": CollectorDevice.revoked_at.is_not(None),
        "stale": sa.and_(live, heard < cutoff),
        "never": sa.and_(live, CollectorDevice.last_seen_at.is_(None), CollectorDevice.enrolled_at >= cutoff),
        "enrolled": sa.and_(live, CollectorDevice.last_seen_at >= cutoff),
    }[state]


def current_certificate(enrolled: CollectorDevice) -> DeviceCertificate | None:
    """The newest certificate not revoked (the one the device uses, or will after a renewal)."""
    valid = [certificate for certificate in enrolled.certificates if certificate.revoked_at is None]
    return max(valid, key=lambda certificate: (as_utc(certificate.issued_at), certificate.id), default=None)


def code_state(code: EnrolmentCode, now: dt.datetime | None = None) -> str:
    """ "used", "expired" or "open"."""
    if code.used_at is not None:
        return "used"
    return "expired" if as_utc(code.expires_at) <= (now or utcnow()) else "open"


def code_condition(state: str) -> Any:
    """The SQL condition of code_state(...) == `state` on EnrolmentCode."""
    now = utcnow()
    unused = EnrolmentCode.used_at.is_(None)
    return {
        "used": EnrolmentCode.used_at.is_not(None),
        "expired": sa.and_(unused, EnrolmentCode.expires_at <= now),
        "open": sa.and_(unused, EnrolmentCode.expires_at > now),
    }[state]
