"""Every device-accounting view of the back office lists and shows a demo record, in Italian, with codes by their
labels and records by their names, never a PIN digest, a password hash or a bind password."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.demo import DEMO_PASSWORD
from core.extensions import limiter
from core.models import User
from modules.device_accounting.models import (
    AccountingSettings,
    CostCenter,
    Directory,
    LedgerEntry,
    PriceList,
    PrintUser,
    Quota,
    Refund,
    Transaction,
)
from modules.device_accounting.tests import admin_support as s
from tests.auth_support import login
from tests.demo_snapshot import load_demo


@pytest.fixture
def demo(app):
    load_demo(app)
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == "admin@copydesk.local"))
        admin.language = "it"
        db.session.commit()
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@copydesk.local", DEMO_PASSWORD).status_code == 302
    return client


def _first(app, model, *where, order=None):
    with app.app_context():
        key = sa.inspect(model).primary_key[0]
        return db.session.scalar(sa.select(key).where(*where).order_by(order if order is not None else key).limit(1))


def _page(app, client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    html = response.get_data(as_text=True)
    assert s.raw_codes(app, html) == [], url
    return s.text_of(html)


def test_each_view_lists_and_shows_a_demo_record_in_italian(app, demo):
    anna = _first(app, PrintUser, PrintUser.username == "abianchi")
    tree = _first(app, CostCenter, CostCenter.name == "Contabilità")
    rollover = _first(app, Quota, Quota.mode == "rollover", Quota.user_id == anna)
    adjustment = _first(app, LedgerEntry, LedgerEntry.kind == "adjustment")
    job = _first(app, Transaction, Transaction.sides_color > 0, Transaction.function == "print")
    farmacia_list = _first(app, PriceList, PriceList.customer_id.is_not(None))
    expected = {
        "/admin/device_accounting_user/": ["abianchi", "Anna Bianchi", "0001873", "Cliente"],
        f"/admin/device_accounting_user/details/?id={anna}": ["0001873", "Direzione", "Studio Legale Bianchi"],
        "/admin/device_accounting_cost_center/": ["Amministrazione / Contabilità", "Farmacia San Marco Srl"],
        f"/admin/device_accounting_cost_center/details/?id={tree}": ["Amministrazione / Contabilità"],
        "/admin/device_accounting_quota/": ["Anna Bianchi (abianchi)", "Banco"],
        f"/admin/device_accounting_quota/details/?id={rollover}": [
            s.label(app, "device_accounting.quota_mode", "rollover"),
            s.label(app, "device_accounting.ledger_kind", "opening"),
        ],
        "/admin/device_accounting_ledger/": ["Stampe a colori di fine novembre addebitate in ritardo"],
        f"/admin/device_accounting_ledger/details/?id={adjustment}": ["Motivo"],
        "/admin/device_accounting_transaction/": ["VCF1234567", "Dispositivo"],
        f"/admin/device_accounting_transaction/details/?id={job}": [
            s.label(app, "device_accounting.function", "print"),
            s.label(app, "device_accounting.job_status", "done"),
        ],
        "/admin/device_accounting_refund/": ["Inceppamento carta: stampa da ripetere"],
        "/admin/device_accounting_price_list/": ["Listino costo pagina Copyservice", "Listino Farmacia San Marco"],
        f"/admin/device_accounting_price_list/details/?id={farmacia_list}": [
            s.label(app, "device_accounting.colour", "color"),
            s.label(app, "device_accounting.paper_size", "any"),
            "0,07",
        ],
        "/admin/device_accounting_directory/": ["ldap://dc1.sanmarco.local", "Farmacia San Marco Srl"],
        "/admin/device_accounting_privacy/": ["Studio Legale Bianchi", "Farmacia San Marco Srl"],
        "/admin/device_accounting_chargeback/": [],
        "/admin/device_accounting_usage/": ["Studio Legale Bianchi"],
        "/admin/device_accounting_import/": ["username"],
    }
    for url, texts in expected.items():
        page = _page(app, client=demo, url=url)
        for text in texts:
            assert text in page, (url, text)


def test_no_page_shows_a_secret(app, demo):
    directory = _first(app, Directory)
    with app.app_context():
        secrets = [
            value
            for user in db.session.scalars(sa.select(PrintUser))
            for value in (user.pin_digest, user.password_hash)
            if value
        ]
        secrets.append(db.session.get(Directory, directory).bind_password_sealed)
        users = db.session.scalars(sa.select(PrintUser.id).order_by(PrintUser.id).limit(5)).all()
    assert secrets
    urls = [
        "/admin/device_accounting_user/",
        *(f"/admin/device_accounting_user/details/?id={user}" for user in users),
        f"/admin/device_accounting_directory/details/?id={directory}",
        f"/admin/device_accounting_directory/edit/?id={directory}",
        "/admin/device_accounting_user/export/csv/",
    ]
    for url in urls:
        html = demo.get(url).get_data(as_text=True)
        assert not [secret for secret in secrets if secret in html], url
        assert "demo-bind-password" not in html


def test_the_refunds_and_settings_name_their_records(app, demo):
    refund = _first(app, Refund)
    settings = _first(app, AccountingSettings)
    page = _page(app, demo, f"/admin/device_accounting_refund/details/?id={refund}")
    assert "VCF1234567" in page or "2XK0123" in page
    assert "Farmacia San Marco Srl" in _page(app, demo, f"/admin/device_accounting_privacy/details/?id={settings}") or (
        "Studio Legale Bianchi" in _page(app, demo, f"/admin/device_accounting_privacy/details/?id={settings}")
    )
