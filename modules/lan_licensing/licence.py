"""The licence file: a versioned canonical JSON payload signed with Ed25519, armoured as text a dealer can paste.

Format 1 (docs/licensing.md): between the armour lines, base64 of a JSON envelope
`{"format": 1, "key_id": ..., "payload": {...}, "signature": ...}`; the signature covers
`SIGNED_PREFIX + canonical(payload)`. Lines before the armour are comments and are ignored.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask_babel import gettext as _

FORMAT = 1
BEGIN = "-----BEGIN COPYDESK LICENCE-----"
END = "-----END COPYDESK LICENCE-----"
SIGNED_PREFIX = b"copydesk-licence-v1\n"
KEY_PREFIX = "ed25519:"


class LicenceError(Exception):
    """A licence refused; `code` is stable (unreadable, tampered, untrusted_key, not_yet_valid, other_installation)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Licence:
    licence_id: str
    licensee_name: str
    licensee_vat: str
    issued_at: dt.datetime
    valid_from: dt.date
    expires_at: dt.date
    modules: tuple[str, ...]
    seats: int
    tier_name: str
    tier_readings: int
    devices: int
    installation_id: str | None = None
    key_id: str = ""

    def payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "licence_id": self.licence_id,
            "licensee": {"name": self.licensee_name, "vat_number": self.licensee_vat},
            "issued_at": self.issued_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "valid_from": self.valid_from.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "modules": sorted(self.modules),
            "seats": self.seats,
            "reading_tier": {"name": self.tier_name, "readings_per_year": self.tier_readings},
            "devices": self.devices,
            "installation_id": self.installation_id,
        }


def canonical(data: dict[str, Any]) -> bytes:
    """The one byte form of a payload that is signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key as `flask licence keygen` prints it ("ed25519:<base64>") or as a PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.removeprefix(KEY_PREFIX), validate=True))


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint naming a key in files and messages."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def armour(envelope: dict[str, Any], comment: str = "", begin: str = BEGIN, end: str = END) -> str:
    body = base64.b64encode(canonical(envelope)).decode()
    lines = [f"# {line}" for line in comment.splitlines() if line.strip()]
    return "\n".join([*lines, begin, *textwrap.wrap(body, 64), end]) + "\n"


def dearmour(text: str, begin: str = BEGIN, end: str = END) -> dict[str, Any]:
    match = re.search(re.escape(begin) + r"(.*?)" + re.escape(end), text or "", re.S)
    if match is None:
        raise LicenceError("unreadable", _("This is not a Copydesk licence file: its armour lines are missing."))
    try:
        envelope = json.loads(base64.b64decode("".join(match.group(1).split()), validate=True))
    except (binascii.Error, ValueError):
        raise LicenceError("tampered", _("The licence file is damaged or was changed: it cannot be read.")) from None
    if not isinstance(envelope, dict):
        raise LicenceError("tampered", _("The licence file is damaged or was changed: it cannot be read."))
    return envelope


def sign(licence: Licence, private_key: Ed25519PrivateKey) -> str:
    """The armoured licence file of `licence`, signed by `private_key`."""
    payload = licence.payload()
    signature = private_key.sign(SIGNED_PREFIX + canonical(payload))
    envelope = {
        "format": FORMAT,
        "key_id": key_id(private_key.public_key()),
        "payload": payload,
        "signature": base64.b64encode(signature).decode(),
    }
    comment = f"Copydesk licence {licence.licence_id} for {licence.licensee_name}, until {licence.expires_at}"
    return armour(envelope, comment)


def verify(text: str, trusted: list[Ed25519PublicKey]) -> Licence:
    """The licence in `text` if one of the `trusted` keys signed exactly these bytes; LicenceError otherwise.

    Dates (not yet valid, expired) and the installation id are checked by `check_applies`, not here.
    """
    envelope = dearmour(text)
    if envelope.get("format") != FORMAT:
        raise LicenceError(
            "unreadable",
            _("The licence file has format %(format)s, which this version cannot read.", format=envelope.get("format")),
        )
    keys = {key_id(key): key for key in trusted}
    key = keys.get(str(envelope.get("key_id")))
    if key is None:
        raise LicenceError(
            "untrusted_key",
            _(
                "The licence is signed by another key (%(key)s), which this installation does not trust.",
                key=envelope.get("key_id"),
            ),
        )
    payload = envelope.get("payload")
    try:
        key.verify(
            base64.b64decode(str(envelope.get("signature")), validate=True),
            SIGNED_PREFIX + canonical(payload if isinstance(payload, dict) else {}),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise LicenceError(
            "tampered", _("The licence file was changed after it was signed: its signature does not match.")
        ) from None
    return _from_payload(payload, envelope["key_id"])


def _from_payload(payload: dict[str, Any], signer: str) -> Licence:
    try:
        return Licence(
            licence_id=str(payload["licence_id"]),
            licensee_name=str(payload["licensee"]["name"]),
            licensee_vat=str(payload["licensee"].get("vat_number") or ""),
            issued_at=dt.datetime.fromisoformat(payload["issued_at"]),
            valid_from=dt.date.fromisoformat(payload["valid_from"]),
            expires_at=dt.date.fromisoformat(payload["expires_at"]),
            modules=tuple(str(m) for m in payload["modules"]),
            seats=int(payload["seats"]),
            tier_name=str(payload["reading_tier"]["name"]),
            tier_readings=int(payload["reading_tier"]["readings_per_year"]),
            devices=int(payload["devices"]),
            installation_id=payload.get("installation_id") or None,
            key_id=signer,
        )
    except (KeyError, TypeError, ValueError):
        # Signed by a trusted key yet incomplete: a vendor tool bug, not tampering.
        raise LicenceError("unreadable", _("The licence is signed but lacks required fields.")) from None


def check_applies(licence: Licence, today: dt.date, installation_id: str) -> None:
    """Refuse a licence not valid yet or bound to another installation (expiry is a state, not a refusal)."""
    if today < licence.valid_from:
        raise LicenceError(
            "not_yet_valid",
            _("The licence is not valid yet: it starts on %(date)s.", date=licence.valid_from.isoformat()),
        )
    if licence.installation_id and licence.installation_id != installation_id:
        raise LicenceError(
            "other_installation",
            _(
                "The licence is for installation %(other)s; this installation is %(this)s.",
                other=licence.installation_id,
                this=installation_id,
            ),
        )


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey, passphrase: str | None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(pem: bytes, passphrase: str | None) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, passphrase.encode() if passphrase else None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key
