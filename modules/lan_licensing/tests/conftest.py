"""An app with lan_licensing on a database of its own, a vendor key the tests make, and licences signed with it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from conftest import backends, database_url, make_app, migrate, wipe_rows
from core.clock import DEFAULT_TIMEZONE
from modules.lan_licensing import licence as lic

VENDOR = lic.generate_key()
VENDOR_PUBLIC = lic.public_key_text(VENDOR.public_key())
EVERY_FEATURE = ("rentals", "metering", "invoicing", "device_accounting")


def dealer_today() -> dt.date:
    """Today in the dealer's time zone (the demo's Europe/Rome), as the licence's days are counted: between 23:00
    and midnight UTC the machine's date is a day behind."""
    return dt.datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()


def licence_text(key=VENDOR, **fields) -> str:
    """A licence signed by `key` (the trusted vendor key unless given), valid this year unless told otherwise."""
    today = dealer_today()
    values = {
        "licence_id": "L-2026-001",
        "licensee_name": "Copyservice Lombardia Srl",
        "licensee_vat": "IT45678900155",
        "issued_at": dt.datetime.now(dt.UTC),
        "valid_from": today - dt.timedelta(days=100),
        "expires_at": today + dt.timedelta(days=200),
        "modules": EVERY_FEATURE,
        "seats": 5,
        "tier_name": "Small",
        "tier_readings": 1000,
        "devices": 10,
        "installation_id": None,
    }
    values.update(fields)
    return lic.sign(lic.Licence(**values), key)


@pytest.fixture(scope="module", params=backends())
def licensing_db(request, tmp_path_factory):
    """A migrated database with every module, and the config that trusts VENDOR (and no demo key folder)."""
    tmp = tmp_path_factory.mktemp(f"lan_{request.param}")
    config = {"LICENCE_PUBLIC_KEYS": [VENDOR_PUBLIC], "LICENCE_TRUST_DIR": str(tmp / "trust")}
    url = database_url(request.param, tmp, name="lan_licensing")
    migrate(make_app(url, **config))
    return url, config, request.param


@pytest.fixture
def start(licensing_db):
    """start() builds the app as a (re)start of the server would; every row is wiped after the test."""
    url, config, backend = licensing_db
    apps = []

    def build(**overrides):
        app = make_app(url, **{**config, **overrides})
        app.config["TEST_BACKEND"] = backend
        apps.append(app)
        return app

    yield build
    if apps:
        wipe_rows(apps[-1])


def install(app, text: str) -> lic.Licence:
    from core.db import db
    from modules.lan_licensing import installation

    with app.app_context():
        licence = installation.install(text)
        db.session.commit()
        return licence
