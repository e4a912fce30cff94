"""The usage report: what this installation used, signed by its own key, for the vendor to verify (upgrades)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from flask_babel import gettext as _

from core.db import db, utcnow
from modules.lan_licensing import installation, quantities, seats, state, tiers
from modules.lan_licensing import licence as lic
from modules.lan_licensing.models import ReadingCount

BEGIN = "-----BEGIN COPYDESK USAGE REPORT-----"
END = "-----END COPYDESK USAGE REPORT-----"
SIGNED_PREFIX = b"copydesk-usage-report-v1\n"


def build() -> dict[str, Any]:
    """The report's payload as of now."""
    now_state = state.compute()
    row = installation.get()
    used = tiers.usage(now_state)
    devices = quantities.in_use(used).get("devices")
    licence = now_state.licence
    years = db.session.execute(
        sa.select(ReadingCount.licence_id, ReadingCount.year_start, ReadingCount.readings).order_by(
            ReadingCount.year_start, ReadingCount.licence_id
        )
    ).all()
    return {
        "format": 1,
        "kind": "usage_report",
        "installation_id": row.installation_id,
        "installation_key": row.public_key,
        "generated_at": utcnow().isoformat(timespec="seconds"),
        "state": now_state.phase,
        "clock_set_back": now_state.clock_set_back,
        "licence_id": licence.licence_id if licence else None,
        "licence_year": {"start": used.year_start.isoformat(), "end": used.year_end.isoformat()},
        "readings": used.readings,
        "tier": {"name": used.tier_name, "readings_per_year": used.tier_readings, "excess": used.excess},
        "seats": {"licensed": licence.seats if licence else None, "in_use": len(seats.held())},
        "devices": {"licensed": licence.devices if licence else None, "in_use": devices.used if devices else None},
        "years": [{"licence_id": i, "start": s.isoformat(), "readings": n} for i, s, n in years],
    }


def sign(payload: dict[str, Any]) -> str:
    """The armoured report, signed by the installation's key."""
    key = installation.private_key(installation.get())
    signature = key.sign(SIGNED_PREFIX + lic.canonical(payload))
    envelope = {"format": 1, "payload": payload, "signature": base64.b64encode(signature).decode()}
    comment = f"Copydesk usage report of installation {payload['installation_id']} at {payload['generated_at']}"
    return lic.armour(envelope, comment, BEGIN, END)


def verify(text: str, expected_key: str | None = None) -> dict[str, Any]:
    """The payload of a report whose signature holds; `expected_key`: the installation key the vendor has on record.

    Raises LicenceError (codes: unreadable, tampered, untrusted_key)."""
    envelope = lic.dearmour(text, BEGIN, END)
    payload = envelope.get("payload")
    if not isinstance(payload, dict) or "installation_key" not in payload:
        raise lic.LicenceError("unreadable", _("This is not a Copydesk usage report."))
    if expected_key and lic.load_public_key(expected_key) != lic.load_public_key(payload["installation_key"]):
        raise lic.LicenceError(
            "untrusted_key", _("The usage report is signed by another installation's key, not the one on record.")
        )
    try:
        key = lic.load_public_key(payload["installation_key"])
        key.verify(
            base64.b64decode(str(envelope.get("signature")), validate=True), SIGNED_PREFIX + lic.canonical(payload)
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise lic.LicenceError(
            "tampered", _("The usage report was changed after it was signed: its signature does not match.")
        ) from None
    return payload
