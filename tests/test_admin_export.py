"""Every back-office list offering a CSV export downloads a whole, parseable file, its spreadsheet formulas defused."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from core.admin import SecuredModelView
from core.db import db
from core.extensions import limiter
from core.models import Partner
from tests.auth_support import login, make_user
from tests.demo_snapshot import load_demo


def _meter_replacement():
    from modules.metering.models import MeterReplacement
    from modules.rentals.models import Device

    device = db.session.scalars(sa.select(Device).order_by(Device.id)).first()
    return MeterReplacement(device_id=device.id, date=dt.date(2026, 3, 2), meter="bw", old_final=99_000, new_start=0)


def _reading_schedule():
    from modules.metering.models import ReadingSchedule
    from modules.rentals.models import Contract

    contract = db.session.scalars(sa.select(Contract).order_by(Contract.id)).first()
    return ReadingSchedule(contract_id=contract.id, rule="last_working_day", days=0)


def _chargeback():
    from modules.device_accounting.models import Chargeback
    from modules.rentals.models import Contract

    contract = db.session.scalars(sa.select(Contract).order_by(Contract.id)).first()
    return Chargeback(contract_id=contract.id, start_date=dt.date(2026, 3, 1))


def _first_customer() -> Partner:
    return db.session.scalars(sa.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.id)).first()


def _sepa_mandate():
    from modules.accounting.models import SepaMandate

    return SepaMandate(
        partner_id=_first_customer().id,
        reference="RUM-EXPORT-1",
        signed_on=dt.date(2026, 1, 15),
        iban="IT60X0542811101000000123456",
    )


def _sepa_batch():
    from modules.accounting.models import SepaBatch

    return SepaBatch(
        message_id="SDD-2026-EXPORT",
        collection_date=dt.date(2026, 12, 10),
        due_from=dt.date(2026, 12, 1),
        due_to=dt.date(2026, 12, 31),
        filename="SDD-2026-EXPORT.xml",
        content=b"<Document/>",
    )


def _dunning_letter():
    from modules.accounting.models import DunningLetter

    return DunningLetter(partner_id=_first_customer().id, step=7, sent_on=dt.date(2026, 11, 20), invoice_ids=[])


# Rows for the lists the demo data leaves empty, so every export is tried with something in it.
EXTRA_ROWS = {
    "metering_replacement": _meter_replacement,
    "metering_schedule": _reading_schedule,
    "device_accounting_chargeback": _chargeback,
    "accounting_sepa_mandate": _sepa_mandate,
    "accounting_sepa_batch": _sepa_batch,
    "accounting_dunning_letter": _dunning_letter,
}


def exportable_views(app) -> list[SecuredModelView]:
    views = app.extensions["copydesk"].admin._views
    return [view for view in views if isinstance(view, SecuredModelView) and view.can_export]


def download(client, endpoint: str) -> list[list[str]]:
    response = client.get(f"/admin/{endpoint}/export/csv/")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def demo(app):
    """The demo dealer, loaded before the test's own user is made (`load_demo` replaces what was there)."""
    load_demo(app)


@pytest.fixture
def admin_client(app):
    limiter.reset()
    with app.app_context():
        make_user("boss@example.it", "dealer_admin")
    client = app.test_client()
    assert login(client, "boss@example.it").status_code == 302
    return client


def test_every_admin_export_downloads_all_its_rows(app, demo, admin_client):
    views = exportable_views(app)
    with app.app_context():
        for view in views:
            if view.endpoint in EXTRA_ROWS:
                db.session.add(EXTRA_ROWS[view.endpoint]())
        db.session.commit()
    assert {"rentals_device", "metering_reading", "core_partner"} <= {view.endpoint for view in views}

    for view in views:
        rows = download(admin_client, view.endpoint)
        with app.app_context():
            expected = db.session.scalar(sa.select(sa.func.count()).select_from(view.model))
        header, body = rows[0], rows[1:]
        assert expected > 0, f"{view.endpoint}: no rows to export; add demo data or an entry in EXTRA_ROWS"
        assert header == [str(title) for _name, title in view._export_columns], view.endpoint
        assert len(body) == expected, view.endpoint
        assert all(len(row) == len(header) for row in body), view.endpoint


def test_device_and_reading_exports_name_the_model_and_device(app, demo, admin_client):

    devices = download(admin_client, "rentals_device")
    readings = download(admin_client, "metering_reading")

    with app.app_context():
        from modules.metering.models import Reading
        from modules.rentals.models import Device

        models = {(device.serial, str(device.model)) for device in db.session.scalars(sa.select(Device))}
        read = sorted(reading.device.serial for reading in db.session.scalars(sa.select(Reading)))
    assert {(row[0], row[2]) for row in devices[1:]} == models
    assert sorted(row[0] for row in readings[1:]) == read


FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1:A2)", "\t=1+2", "\r=1+2"]


def test_exported_formulas_are_prefixed_with_a_quote_so_spreadsheets_show_text(app, admin_client):
    with app.app_context():
        for formula in [*FORMULAS, "Studio Bianchi"]:
            db.session.add(Partner(name=formula, is_customer=True))
        db.session.commit()

    rows = download(admin_client, "core_partner")

    assert {row[0] for row in rows[1:]} == {"'" + formula for formula in FORMULAS} | {"Studio Bianchi"}
    assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for row in rows[1:] for cell in row)
