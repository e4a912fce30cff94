"""Reorder rules: the suggestion arithmetic, incoming orders, receiving them, and the daily email to the staff."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.models import OutboxMessage
from core.validation import ValidationError
from modules.inventory import jobs, reorder, stock
from modules.inventory.models import ExpectedReceipt
from modules.inventory.tests import support
from modules.inventory.tests.conftest import inventory_app


@pytest.mark.parametrize(
    ("on_hand", "incoming", "minimum", "maximum", "multiple", "expected"),
    [
        ("5", "0", "6", "20", "4", "16"),  # 15 missing, in packs of 4: 16
        ("6", "0", "6", "20", "1", "14"),  # at the minimum: order
        ("7", "0", "6", "20", "1", "0"),  # above: nothing
        ("2", "4", "6", "20", "5", "15"),  # on-hand + incoming = 6: 14 missing, packs of 5
        ("0", "0", "0", "0", "1", "0"),  # max 0: nothing to order
        ("-2", "0", "1", "3", "1", "5"),  # negative stock (allowed) counts
        ("1.5", "0", "2", "10", "0.5", "8.5"),
    ],
)
def test_order_quantity(on_hand, incoming, minimum, maximum, multiple, expected):
    values = [Decimal(v) for v in (on_hand, incoming, minimum, maximum, multiple)]
    assert reorder.order_quantity(*values) == Decimal(expected)


def test_suggestions_count_shelves_and_incoming_orders(db_session):
    here = support.place()
    toner, drum = support.product(), support.product("DK-1150")
    support.receive(toner, 3, here.shelf)
    support.receive(toner, 9, here.van)  # a van is not the warehouse's stock
    reorder.save_rule(None, product_id=toner.id, warehouse_id=here.warehouse.id, min_quantity="5", max_quantity="12")
    reorder.save_rule(None, product_id=drum.id, warehouse_id=here.warehouse.id, min_quantity="1", max_quantity="2")
    due = reorder.expect_receipt(drum.id, here.warehouse.id, "2", reference="PO 88")
    db.session.commit()
    [suggestion] = reorder.suggestions()
    assert (suggestion.product.code, suggestion.on_hand, suggestion.order_quantity) == ("TK-5240K", 3, 9)
    # Receiving the order into a shelf books the receipt and stops counting it as incoming.
    reorder.receive(due.id, here.shelf.id)
    db.session.commit()
    assert stock.on_hand(drum.id, here.warehouse.id, subtree=True) == 2
    assert db.session.get(ExpectedReceipt, due.id).received is True
    with pytest.raises(ValidationError) as again:
        reorder.receive(due.id)
    assert again.value.errors == {"receipt": "This order has already been received."}


def test_rule_checks(db_session):
    here = support.place()
    toner = support.product()
    with pytest.raises(ValidationError) as caught:
        reorder.save_rule(
            None, product_id=toner.id, warehouse_id=here.shelf.id, min_quantity="5", max_quantity="2", multiple="0"
        )
    assert caught.value.errors == {
        "warehouse": "Choose a warehouse.",
        "multiple": "The quantity must be more than zero.",
        "max_quantity": "The maximum is at least the minimum.",
    }


@pytest.fixture
def mail_app(app, smtp_server):
    """The same database, with mail going to the test SMTP server."""
    mailing = inventory_app(
        app.config["SQLALCHEMY_DATABASE_URI"],
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
    )
    yield mailing
    with mailing.app_context():
        db.engine.dispose()


def test_the_daily_report_emails_the_warehouse_staff_once_a_day_in_their_language(mail_app, smtp_server):
    with mail_app.app_context():
        here = support.place()
        toner = support.product()
        support.receive(toner, 2, here.shelf)
        reorder.save_rule(
            None, product_id=toner.id, warehouse_id=here.warehouse.id, min_quantity="4", max_quantity="10", multiple="6"
        )
        office = support.user("back_office", "magazzino@example.com")
        office.language = "it"
        support.user("dealer_admin", "boss@example.com")
        db.session.commit()
        assert jobs.reorder_report() == 2
        assert jobs.reorder_report() == 0  # run again the same day: the dedupe key keeps one message each
        messages = smtp_server.wait_for(2)
        by_recipient = {message["To"]: message for message in messages}
        italian = by_recipient["magazzino@example.com"]
        assert italian["Subject"].endswith(_italian_today())  # in Italian: "1 dic 2026"
        body = italian.get_body(("plain",)).get_content()
        assert "TK-5240K" in body and "12" in body  # 8 missing, in packs of 6
        assert "/admin/" in body  # the link to the back office's list
        assert "boss@example.com" in by_recipient
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 2
        db.session.remove()


def _italian_today() -> str:
    from babel.dates import format_date

    from core import clock

    return format_date(clock.today(), "medium", locale="it")


def test_no_email_on_a_day_with_nothing_to_order(db_session):
    support.user("back_office", "magazzino@example.com")
    assert reorder.send_reorder_report(dt.date(2026, 12, 1)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0
