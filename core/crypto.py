"""Secrets at rest: Fernet sealing and keyed digests, with keys derived from SECRET_KEY (and its fallbacks)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class SealBroken(ValueError):
    """A sealed value that none of the app's keys opens (SECRET_KEY changed without a fallback)."""


def _derive(secret_key: str | bytes, purpose: str) -> bytes:
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"copydesk {purpose}".encode()).derive(material)


def _secret_keys() -> list[str | bytes]:
    return [current_app.config["SECRET_KEY"], *(current_app.config.get("SECRET_KEY_FALLBACKS") or ())]


def _fernet(purpose: str) -> MultiFernet:
    # The newest key seals; every key (SECRET_KEY_FALLBACKS too) opens, so a rotated key still reads older values.
    return MultiFernet([Fernet(base64.urlsafe_b64encode(_derive(key, purpose))) for key in _secret_keys()])


def seal(text: str, purpose: str) -> str:
    """`text` encrypted and authenticated for `purpose` (a short name such as "outbox secrets")."""
    return _fernet(purpose).encrypt(text.encode()).decode()


def unseal(token: str, purpose: str) -> str:
    """The text `seal(text, purpose)` sealed; raises SealBroken when no key opens it."""
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SealBroken(purpose) from None


def seal_bytes(data: bytes, purpose: str) -> bytes:
    """`data` encrypted and authenticated for `purpose` (a document kept at rest, such as a held print job)."""
    return _fernet(purpose).encrypt(data)


def unseal_bytes(token: bytes, purpose: str) -> bytes:
    """The bytes `seal_bytes(data, purpose)` sealed; raises SealBroken when no key opens them."""
    try:
        return _fernet(purpose).decrypt(bytes(token))
    except InvalidToken:
        raise SealBroken(purpose) from None


def keyed_digest(value: str, purpose: str) -> str:
    """A hex HMAC-SHA256 of `value` under the current key: equal values give equal digests, so they can be looked up,
    but without SECRET_KEY a short secret (a PIN) cannot be guessed from its digest."""
    return hmac.new(_derive(_secret_keys()[0], purpose), value.encode(), hashlib.sha256).hexdigest()
