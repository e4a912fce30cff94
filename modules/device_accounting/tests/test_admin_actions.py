"""The device-accounting back office's buttons through real forms: refunds, balance adjustments, cards and PINs, and
what a technician (read only) may not do."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import Balance, Card, LedgerEntry, PrintUser, Refund, Transaction
from modules.device_accounting.tests import admin_support as s
from modules.device_accounting.users import pin_digest

USERS = "/admin/device_accounting_user"
JOBS = "/admin/device_accounting_transaction"
QUOTAS = "/admin/device_accounting_quota"


def _job(app, office) -> Transaction:
    with app.app_context():
        return db.session.scalars(
            sa.select(Transaction).where(Transaction.user_id == office.user_id).order_by(Transaction.cost.desc())
        ).first()


def _balance(app, office) -> Decimal:
    with app.app_context():
        return db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == office.quota_id))


def test_staff_refund_part_of_a_job_and_never_beyond_its_cost(app, office):
    client = s.staff(app, "back_office")
    job = _job(app, office)
    assert job.cost == Decimal("0.2200")
    before = _balance(app, office)
    page = f"{JOBS}/details/?id={job.id}"

    done = s.post(
        client,
        f"{JOBS}/refund/?id={job.id}",
        {"amount": "0,20", "reason": "Inceppamento carta"},
        page,
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert "Inceppamento carta" in s.text_of(done.get_data(as_text=True))
    assert _balance(app, office) == before + Decimal("0.20")

    refused = s.post(
        client, f"{JOBS}/refund/?id={job.id}", {"amount": "0.05", "reason": "Ancora"}, page, follow_redirects=True
    )
    assert "0,02" in s.flashed(refused.get_data(as_text=True))  # what may still be refunded
    no_reason = s.post(
        client, f"{JOBS}/refund/?id={job.id}", {"amount": "0.01", "reason": ""}, page, follow_redirects=True
    )
    assert s.flashed(no_reason.get_data(as_text=True))
    with app.app_context():
        refunds = db.session.execute(sa.select(Refund.amount, Refund.reason, Refund.actor_id)).all()
        assert [(amount, reason) for amount, reason, _actor in refunds] == [(Decimal("0.2000"), "Inceppamento carta")]
        assert refunds[0].actor_id is not None
        assert db.session.get(Transaction, job.id).refunded == Decimal("0.2000")
    assert _balance(app, office) == before + Decimal("0.20")


def test_staff_adjust_a_balance_with_a_reason_on_the_quota_page_and_in_the_ledger(app, office):
    client = s.staff(app, "back_office")
    before = _balance(app, office)
    page = f"{QUOTAS}/details/?id={office.quota_id}"
    done = s.post(
        client,
        f"{QUOTAS}/adjust/?id={office.quota_id}",
        {"amount": "10,50", "reason": "Ricarica concordata"},
        page,
        follow_redirects=True,
    )
    html = done.get_data(as_text=True)
    assert "Ricarica concordata" in s.text_of(html)
    assert s.label(app, "device_accounting.ledger_kind", "adjustment") in s.text_of(html)
    assert _balance(app, office) == before + Decimal("10.50")

    refused = s.post(
        client, f"{QUOTAS}/adjust/?id={office.quota_id}", {"amount": "5", "reason": ""}, page, follow_redirects=True
    )
    assert s.flashed(refused.get_data(as_text=True))
    assert _balance(app, office) == before + Decimal("10.50")

    # The ledger list takes an adjustment too (choose the quota, amount and reason).
    ledger = "/admin/device_accounting_ledger"
    created = s.post(
        client,
        f"{ledger}/new/",
        {"quota": office.quota_id, "amount": "-2.00", "reason": "Correzione"},
        f"{ledger}/new/",
        follow_redirects=True,
    )
    assert created.status_code == 200
    assert _balance(app, office) == before + Decimal("8.50")
    with app.app_context():
        rows = db.session.execute(
            sa.select(LedgerEntry.amount, LedgerEntry.reason)
            .where(LedgerEntry.kind == "adjustment")
            .order_by(LedgerEntry.id)
        ).all()
    assert rows == [(Decimal("10.5000"), "Ricarica concordata"), (Decimal("-2.0000"), "Correzione")]
    listed = s.text_of(client.get(f"{ledger}/").get_data(as_text=True))
    assert "Ricarica concordata" in listed and "Mario Rossi (mrossi)" in listed


def test_cards_keep_their_leading_zeros_and_a_lost_card_is_disabled(app, office):
    client = s.staff(app, "back_office")
    other = f"{USERS}/details/?id={office.other_user_id}"
    taken = s.post(
        client, f"{USERS}/cards/add/?id={office.other_user_id}", {"number": "0004521"}, other, follow_redirects=True
    )
    assert "Mario Rossi" in s.flashed(taken.get_data(as_text=True))  # who has it
    s.post(client, f"{USERS}/cards/add/?id={office.other_user_id}", {"number": "4521"}, other)
    with app.app_context():
        cards = dict(db.session.execute(sa.select(Card.number, Card.user_id)).all())
        assert cards == {"0004521": office.user_id, "4521": office.other_user_id}
        card_id = db.session.scalar(sa.select(Card.id).where(Card.number == "4521"))
    page = s.post(
        client, f"{USERS}/cards/disable/?id={office.other_user_id}", {"card_id": card_id}, other, follow_redirects=True
    )
    assert "4521" in s.text_of(page.get_data(as_text=True))
    with app.app_context():
        assert db.session.get(Card, card_id).active is False


def test_a_pin_reset_shows_the_new_pin_once_and_no_page_shows_a_digest(app, office):
    client = s.staff(app, "back_office")
    page = f"{USERS}/details/?id={office.user_id}"
    short = s.post(client, f"{USERS}/pin/?id={office.user_id}", {"pin": "123"}, page, follow_redirects=True)
    assert s.flashed(short.get_data(as_text=True))
    with app.app_context():
        assert db.session.get(PrintUser, office.user_id).pin_digest is None

    reset = s.post(client, f"{USERS}/pin/?id={office.user_id}", {"pin": ""}, page, follow_redirects=True)
    message = s.flashed(reset.get_data(as_text=True))
    pins = [number for number in s.NUMBER.findall(message) if 4 <= len(number) <= 8]
    assert pins, message
    with app.app_context():
        user = db.session.get(PrintUser, office.user_id)
        assert user.pin_digest == pin_digest(office.customer_id, pins[0])
        digest = user.pin_digest
    for url in (page, f"{USERS}/"):
        html = client.get(url).get_data(as_text=True)
        assert digest not in html
        assert pins[0] not in html  # shown once, in the message only


def test_a_technician_reads_every_page_but_changes_nothing(app, office):
    client = s.staff(app, "technician")
    job = _job(app, office)
    for url in (
        f"{USERS}/",
        f"{USERS}/details/?id={office.user_id}",
        f"{JOBS}/",
        f"{JOBS}/details/?id={job.id}",
        f"{QUOTAS}/details/?id={office.quota_id}",
        "/admin/device_accounting_ledger/",
        "/admin/device_accounting_cost_center/",
        "/admin/device_accounting_price_list/",
    ):
        assert client.get(url).status_code == 200, url
    user_page = client.get(f"{USERS}/details/?id={office.user_id}").get_data(as_text=True)
    assert 'name="number"' not in user_page and 'name="pin"' not in user_page
    assert 'name="reason"' not in client.get(f"{JOBS}/details/?id={job.id}").get_data(as_text=True)
    page = f"{USERS}/details/?id={office.user_id}"
    attempts = [
        (f"{JOBS}/refund/?id={job.id}", {"amount": "0.10", "reason": "x"}),
        (f"{QUOTAS}/adjust/?id={office.quota_id}", {"amount": "5", "reason": "x"}),
        (f"{USERS}/cards/add/?id={office.user_id}", {"number": "999"}),
        (f"{USERS}/pin/?id={office.user_id}", {"pin": "4321"}),
    ]
    for url, data in attempts:
        assert s.post(client, url, data, page).status_code == 403, url
    assert client.get(f"{USERS}/new/").status_code in (302, 403)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Refund)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Card)) == 1
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "adjustment")
            )
            == 0
        )
        assert db.session.get(PrintUser, office.user_id).pin_digest is None
