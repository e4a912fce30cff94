"""Consumable shipments: shipping moves stock to the customer, billable by the contract, portal requests refused for a
colour the model lacks, confirming posts the move and emails the contact, what was shipped to a device."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import OutboxMessage
from core.validation import ValidationError
from modules.inventory import locations, products
from modules.inventory.models import StockMove
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import Shipment
from modules.rentals_inventory.tests import support


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_shipping_a_toner_moves_it_from_the_warehouse_to_the_customer(db_session):
    s = support.standard()

    shipment = shipments.ship(s.device.id, s.black.id, "2", s.warehouse.id, user=None)
    db.session.commit()

    assert shipment.state == "shipped"
    assert shipment.ship_date == clock.today()
    assert support.on_hand(s.black, s.warehouse) == Decimal(3)
    assert support.on_hand(s.black, locations.virtual("customer")) == Decimal(2)
    move = db.session.get(StockMove, shipment.move_id)
    assert (move.kind, move.partner_id, move.quantity) == ("delivery", s.customer.id, Decimal(2))
    assert s.device.serial in move.reference


def test_a_contract_that_includes_consumables_ships_free_one_that_does_not_bills(db_session):
    included = support.standard(consumables_included=True)
    free = shipments.ship(included.device.id, included.black.id, 1, included.warehouse.id)
    other = support.device("VCF7654321")
    support.contract(included.customer, [other], consumables_included=False, start_date="2026-02-01")
    cyan = support.toner("TK-5240C", "cyan", other)
    support.receive(cyan, 1, included.warehouse)

    billed = shipments.ship(other.id, cyan.id, 1, included.warehouse.id)
    db.session.commit()

    assert (free.billable, free.unit_price) == (False, None)
    assert (billed.billable, billed.unit_price) == (True, Decimal("79.00"))


def test_shipping_more_than_is_on_hand_or_a_product_that_does_not_fit_writes_nothing(db_session):
    s = support.standard()
    unfitted = products.save_product(None, code="CF289A", description="Toner HP", colour="black")
    db.session.commit()

    with pytest.raises(ValidationError) as too_many:
        shipments.ship(s.device.id, s.black.id, 6, s.warehouse.id)
    db.session.rollback()
    with pytest.raises(ValidationError) as wrong:
        shipments.ship(s.device.id, unfitted.id, 0, s.warehouse.id)
    db.session.rollback()

    assert "quantity" in too_many.value.errors
    assert set(wrong.value.errors) == {"product", "quantity"}
    assert "does not fit" in wrong.value.errors["product"]
    assert count(Shipment) == 0
    assert support.on_hand(s.black, s.warehouse) == Decimal(5)


def test_a_toner_request_for_a_colour_the_model_does_not_use_is_refused(db_session):
    partner = support.customer()
    mono = support.device("VBB7654321", support.MONO_MODEL)
    support.contract(partner, [mono])
    anna = support.contact(partner)

    with pytest.raises(ValidationError) as cyan:
        shipments.request_toner(mono.id, "cyan", 10, anna)
    with pytest.raises(ValidationError) as level:
        shipments.request_toner(mono.id, "black", 101, anna)
    request = shipments.request_toner(mono.id, "black", 5, anna)
    db.session.commit()

    assert set(cyan.value.errors) == {"colour"}
    assert "black" in cyan.value.errors["colour"]
    assert set(level.value.errors) == {"level"}
    assert shipments.device_colours(mono.id) == {"black"}
    assert (request.state, request.colour, request.requested_level, request.product_id) == (
        "requested",
        "black",
        5,
        None,
    )
    assert count(Shipment) == 1


def test_another_customers_contact_cannot_request_toner_for_the_device(db_session):
    s = support.standard()
    stranger = support.contact(support.customer("Farmacia San Marco Srl"), email="luca@farmacia.example")

    with pytest.raises(ValidationError) as refused:
        shipments.request_toner(s.device.id, "black", 10, stranger)

    assert set(refused.value.errors) == {"device"}


def test_confirming_a_request_posts_the_move_and_emails_the_contact(db_session):
    s = support.standard()
    anna = support.contact(s.customer)
    request = shipments.request_toner(s.device.id, "black", 3, anna)
    db.session.commit()

    shipments.confirm(request.id, s.black.id, s.warehouse.id)
    db.session.commit()

    shipped = db.session.get(Shipment, request.id)
    assert shipped.state == "shipped"
    assert shipped.product_id == s.black.id
    assert support.on_hand(s.black, s.warehouse) == Decimal(4)
    message = db.session.scalar(
        sa.select(OutboxMessage).where(OutboxMessage.template == "rentals_inventory/toner_shipped")
    )
    assert message.recipients == ["anna@bianchi.example"]
    assert message.subject == "Your toner has shipped"
    assert "TK-5240K" in message.body_text
    assert s.device.serial in message.body_text
    assert "Dear Anna Bianchi," in message.body_text


def test_a_request_is_confirmed_once_and_only_with_its_colour(db_session):
    s = support.standard()
    cyan = support.toner("TK-5240C", "cyan", s.device)
    support.receive(cyan, 2, s.warehouse)
    request = shipments.request_toner(s.device.id, "black", 3, support.contact(s.customer))
    db.session.commit()

    with pytest.raises(ValidationError) as wrong_colour:
        shipments.confirm(request.id, cyan.id, s.warehouse.id)
    db.session.rollback()
    shipments.confirm(request.id, s.black.id, s.warehouse.id)
    db.session.commit()
    with pytest.raises(ValidationError) as again:
        shipments.confirm(request.id, s.black.id, s.warehouse.id)

    assert set(wrong_colour.value.errors) == {"product"}
    assert set(again.value.errors) == {"shipment"}
    assert count(OutboxMessage) == 1
    assert support.on_hand(cyan, s.warehouse) == Decimal(2)


def test_a_cancelled_request_moves_nothing(db_session):
    s = support.standard()
    request = shipments.request_toner(s.device.id, "black", 3, support.contact(s.customer))
    db.session.commit()

    shipments.cancel(request.id, note="Ordered twice")
    db.session.commit()

    assert db.session.get(Shipment, request.id).state == "cancelled"
    assert count(StockMove) == 1  # the receipt only
    with pytest.raises(ValidationError):
        shipments.confirm(request.id, s.black.id, s.warehouse.id)


def test_shipped_lists_a_colours_cartridges_with_their_yield_in_the_window(db_session):
    s = support.standard()
    rated = support.toner("TK-5240C", "cyan", s.device, yield_pages=None, rated=3000)
    support.receive(rated, 3, s.warehouse)
    today = clock.today()
    shipments.ship(s.device.id, s.black.id, 2, s.warehouse.id, ship_date=today - dt.timedelta(days=40))
    shipments.ship(s.device.id, s.black.id, 1, s.warehouse.id, ship_date=today - dt.timedelta(days=400))
    shipments.ship(s.device.id, rated.id, 3, s.warehouse.id, ship_date=today - dt.timedelta(days=10))
    db.session.commit()

    black = shipments.shipped(s.device.id, "black", today - dt.timedelta(days=365), today)
    cyan = shipments.shipped(s.device.id, "cyan", today - dt.timedelta(days=365), today)

    assert black == [shipments.ShippedCartridge(today - dt.timedelta(days=40), Decimal(2), 4000)]
    assert cyan == [shipments.ShippedCartridge(today - dt.timedelta(days=10), Decimal(3), 3000)]
    assert shipments.shipped(s.device.id, "magenta", today - dt.timedelta(days=365), today) == []
