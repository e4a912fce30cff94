"""Demo licence: a vendor key the demo makes (kept in the trust folder) signs a licence of every module on disk."""

from __future__ import annotations

import datetime as dt

from flask import current_app

from core import clock
from core.db import db, utcnow
from core.loader import discover
from core.models import Company
from modules.lan_licensing import installation
from modules.lan_licensing import licence as lic

DEMO_KEY = "demo-vendor"


def _demo_key() -> lic.Ed25519PrivateKey:
    folder = installation.trust_dir()
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"{DEMO_KEY}.key"
    if private.exists():
        key = lic.load_private_key(private.read_bytes(), None)
    else:
        key = lic.generate_key()
        private.write_bytes(lic.private_key_pem(key, None))
        private.chmod(0o600)
    (folder / f"{DEMO_KEY}.pub").write_text(lic.public_key_text(key.public_key()) + "\n", encoding="utf-8")
    return key


def load_demo() -> None:
    """Install the demo licence once: every module, 10 seats, a 5,000-reading tier, a year from 60 days ago."""
    if installation.installed() is not None:
        return
    company = db.session.scalar(db.select(Company))
    features = {m.licence_feature for m in discover(current_app.config["COPYDESK_MODULE_PACKAGES"]).values()}
    start = clock.today() - dt.timedelta(days=60)
    demo = lic.Licence(
        licence_id="DEMO-" + start.strftime("%Y%m%d"),
        licensee_name=company.name if company else "Demo dealer",
        licensee_vat=company.vat_number if company else "",
        issued_at=utcnow(),
        valid_from=start,
        expires_at=start + dt.timedelta(days=364),
        modules=tuple(sorted(f for f in features if f)),
        seats=10,
        tier_name="Demo 5000",
        tier_readings=5000,
        devices=50,
        installation_id=installation.get().installation_id,
    )
    installation.install(lic.sign(demo, _demo_key()))
    db.session.commit()
