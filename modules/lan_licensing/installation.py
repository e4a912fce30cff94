"""This installation: its row (created on first use), the keys it trusts, the latest time seen, installing a licence."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import os
import uuid
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

from core import audit, clock
from core.crypto import seal, unseal
from core.db import db, insert_once, utcnow
from modules.lan_licensing import licence as lic
from modules.lan_licensing.models import InstalledLicence, LicenceInstallation

SEAL_PURPOSE = "lan_licensing installation key"
ROW_ID = 1


def _as_aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def get() -> LicenceInstallation:
    """The installation row, created (with a fresh id and key) the first time it is asked for."""
    row = db.session.get(LicenceInstallation, ROW_ID)
    if row is not None:
        return row
    key = lic.generate_key()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    now = utcnow()
    # Committed on its own (a request must not hold SQLite's write lock for it); of two processes starting at once,
    # the second finds the first's row.
    insert_once(
        LicenceInstallation.__table__,
        {
            "id": ROW_ID,
            "installation_id": str(uuid.uuid4()),
            "created_at": now,
            "latest_seen_at": now,
            "private_key": seal(base64.b64encode(raw).decode(), SEAL_PURPOSE),
            "public_key": lic.public_key_text(key.public_key()),
        },
    )
    return db.session.get(LicenceInstallation, ROW_ID)


def private_key(row: LicenceInstallation) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(unseal(row.private_key, SEAL_PURPOSE)))


def latest_seen(row: LicenceInstallation) -> dt.datetime:
    return _as_aware(row.latest_seen_at)


def note_time(row: LicenceInstallation, now: dt.datetime | None = None) -> None:
    """Move the latest time seen forward to now (never back); the caller commits."""
    now = now or utcnow()
    if now > latest_seen(row):
        db.session.execute(
            sa.update(LicenceInstallation)
            .where(LicenceInstallation.id == row.id, LicenceInstallation.latest_seen_at < now)
            .values(latest_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(row, ["latest_seen_at"])


def trust_dir() -> Path:
    configured = current_app.config.get("LICENCE_TRUST_DIR") or os.environ.get("LICENCE_TRUST_DIR")
    return Path(configured) if configured else Path(current_app.config["INSTANCE_DIR"]) / "licence-keys"


def trusted_key_texts() -> tuple[str, ...]:
    """The vendor public keys this installation trusts: LICENCE_PUBLIC_KEYS and the files `*.pub` of the trust dir."""
    configured = current_app.config.get("LICENCE_PUBLIC_KEYS")
    if configured is None:
        configured = os.environ.get("LICENCE_PUBLIC_KEYS", "")
    if isinstance(configured, str):
        configured = [part for part in configured.replace("\n", ",").split(",") if part.strip()]
    texts = [text.strip() for text in configured]
    folder = trust_dir()
    if folder.is_dir():
        texts += [path.read_text(encoding="utf-8").strip() for path in sorted(folder.glob("*.pub"))]
    return tuple(texts)


@functools.lru_cache(maxsize=32)
def _keys(texts: tuple[str, ...]) -> list[Ed25519PublicKey]:
    keys = []
    for text in texts:
        try:
            keys.append(lic.load_public_key(text))
        except ValueError:
            current_app.logger.warning("lan_licensing: ignoring an unreadable trusted key")
    return keys


def trusted_keys() -> list[Ed25519PublicKey]:
    return _keys(trusted_key_texts())


@functools.lru_cache(maxsize=32)
def _verified(text: str, texts: tuple[str, ...]) -> lic.Licence | lic.LicenceError:
    try:
        return lic.verify(text, _keys(texts))
    except lic.LicenceError as error:
        return error


def verify_text(text: str) -> lic.Licence:
    """Verify a licence against the trusted keys (cached per text); LicenceError when refused."""
    result = _verified(text, trusted_key_texts())
    if isinstance(result, lic.LicenceError):
        raise result
    return result


def installed() -> InstalledLicence | None:
    return db.session.scalars(sa.select(InstalledLicence).order_by(InstalledLicence.id.desc()).limit(1)).first()


def install(text: str, user_id: int | None = None) -> lic.Licence:
    """Check and store a licence file as the licence in force (the caller commits); LicenceError when refused.

    Modules it adds or drops change at the next start of the web server and the workers.
    """
    licence = verify_text(text)
    row = get()
    lic.check_applies(licence, clock.today(), row.installation_id)
    note_time(row)
    db.session.add(InstalledLicence(licence_id=licence.licence_id, text=text.strip() + "\n", installed_by=user_id))
    audit.record(
        "licence_installed",
        InstalledLicence.__tablename__,
        None,
        {"licence_id": licence.licence_id, "expires_at": licence.expires_at.isoformat()},
    )
    return licence
