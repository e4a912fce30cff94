"""Stock moves: receipts, transfers, deliveries, reverse moves, counts, serials and the negative-stock refusal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from core.db import db
from core.settings import set_setting
from core.validation import ValidationError
from modules.inventory import locations, stock
from modules.inventory.models import SerialNumber
from modules.inventory.tests import support


@pytest.fixture
def here(db_session):
    return support.place()


def errors_of(call, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    db.session.rollback()
    return caught.value.errors


def test_receipt_transfer_delivery_keep_on_hand_per_location_and_warehouse(here):
    toner = support.product()
    support.receive(toner, 10, here.shelf)
    stock.post_move(toner.id, Decimal("3"), here.shelf.id, here.van.id, kind="transfer")
    stock.post_move(
        toner.id,
        Decimal("1"),
        here.van.id,
        locations.virtual("customer").id,
        kind="delivery",
        partner_id=here.customer.id,
        user=here.technician,
    )
    db.session.commit()
    assert stock.on_hand(toner.id, here.shelf.id) == 7
    assert stock.on_hand(toner.id, here.van.id) == 2
    assert stock.on_hand(toner.id, here.warehouse.id) == 0
    assert stock.on_hand(toner.id, here.warehouse.id, subtree=True) == 7
    rows = {(row.location.name, row.quantity) for row in stock.stock_rows(toner.id)}
    assert rows == {("Shelf A", 7), ("Van Rossi", 2)}
    assert [row.location.name for row in stock.stock_rows(warehouse_id=here.warehouse.id)] == ["Shelf A"]


def test_delivery_of_more_than_on_hand_is_refused_and_writes_nothing(here):
    toner = support.product()
    support.receive(toner, 2, here.van)
    before = support.moves_count()
    errors = errors_of(
        stock.post_move,
        toner.id,
        Decimal("3"),
        here.van.id,
        locations.virtual("customer").id,
        kind="delivery",
        partner_id=here.customer.id,
    )
    assert errors == {"quantity": "Only 2 pz of TK-5240K on hand at Van Rossi."}
    assert support.moves_count() == before
    assert support.quant(toner, here.van) == 2


def test_negative_stock_allowed_by_the_setting(here):
    toner = support.product()
    set_setting(stock.ALLOW_NEGATIVE_SETTING, True)
    db.session.commit()
    stock.post_move(toner.id, Decimal("2"), here.shelf.id, locations.virtual("scrap").id, kind="scrap")
    db.session.commit()
    assert stock.on_hand(toner.id, here.shelf.id) == -2


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (Decimal("0"), "The quantity must be more than zero."),
        (Decimal("-1"), "The quantity must be more than zero."),
        ("-2", "The quantity must be more than zero."),
        ("1.2345", "At most 3 decimal places."),
        ("abc", "Not a number: abc"),
    ],
)
def test_bad_quantities_name_the_quantity(here, quantity, message):
    toner = support.product()
    errors = errors_of(
        stock.post_move, toner.id, quantity, locations.virtual("supplier").id, here.shelf.id, kind="receipt"
    )
    assert errors == {"quantity": message}
    assert support.moves_count() == 0


def test_unknown_and_same_locations_and_kind_rules(here):
    toner = support.product()
    supplier = locations.virtual("supplier").id
    assert errors_of(stock.post_move, toner.id, 1, 999_999, here.shelf.id, kind="receipt") == {
        "from_location": "Unknown location."
    }
    assert errors_of(stock.post_move, toner.id, 1, here.shelf.id, here.shelf.id, kind="transfer") == {
        "to_location": "A move goes to another location than the one it comes from."
    }
    # A receipt comes from the supplier; a transfer stays between real locations.
    assert errors_of(stock.post_move, toner.id, 1, here.van.id, here.shelf.id, kind="receipt") == {
        "from_location": "Receipt cannot come from Van Rossi."
    }
    assert errors_of(stock.post_move, toner.id, 1, supplier, here.shelf.id, kind="transfer") == {
        "from_location": "Transfer cannot come from Supplier."
    }
    assert errors_of(stock.post_move, 424242, 1, supplier, here.shelf.id, kind="receipt") == {
        "product": "Unknown product."
    }
    assert errors_of(
        stock.post_move, toner.id, 1, here.shelf.id, locations.virtual("customer").id, kind="delivery"
    ) == {"partner": "Choose the customer."}
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    assert errors_of(stock.post_move, toner.id, 1, supplier, here.shelf.id, kind="receipt", move_date=tomorrow) == {
        "move_date": "A move cannot be dated in the future."
    }
    assert support.moves_count() == 0


def test_technician_moves_only_from_or_to_their_van_never_from_supplier_or_to_loss(here):
    toner = support.product()
    support.receive(toner, 5, here.shelf)
    other = support.user("technician", "bianchi@example.com")
    other_van = support.location("Van Bianchi", "van", technician=other)
    supplier, loss = locations.virtual("supplier").id, locations.virtual("loss").id
    tech = here.technician
    assert errors_of(stock.post_move, toner.id, 1, supplier, here.van.id, kind="receipt", user=tech) == {
        "from_location": "Only the warehouse staff move stock from or to Supplier."
    }
    assert errors_of(stock.post_move, toner.id, 1, here.shelf.id, other_van.id, kind="transfer", user=tech) == {
        "from_location": "You move stock only from or to your own van."
    }
    support.receive(toner, 1, here.van)
    assert errors_of(stock.post_move, toner.id, 1, here.van.id, loss, kind="count", user=tech) == {
        "to_location": "Only the warehouse staff move stock from or to Inventory loss."
    }
    assert errors_of(stock.post_move, toner.id, 1, here.van.id, other_van.id, kind="transfer", user=tech) == {
        "to_location": "Move stock to another van through the warehouse."
    }
    stock.post_move(toner.id, 2, here.shelf.id, here.van.id, kind="transfer", user=tech)
    db.session.commit()
    assert stock.on_hand(toner.id, here.van.id) == 3
    back_office = support.user("back_office")
    stock.post_move(toner.id, 1, here.van.id, loss, kind="count", user=back_office)
    db.session.commit()
    assert stock.on_hand(toner.id, here.van.id) == 2


def test_reverse_move_undoes_once_and_is_never_reversed_again(here):
    toner = support.product()
    [receipt] = support.receive(toner, 4, here.shelf)
    reverse = stock.reverse_move(receipt.id)
    db.session.commit()
    assert (reverse.from_location_id, reverse.to_location_id) == (receipt.to_location_id, receipt.from_location_id)
    assert reverse.reverses_id == receipt.id and reverse.quantity == 4
    assert stock.on_hand(toner.id, here.shelf.id) == 0
    assert errors_of(stock.reverse_move, receipt.id) == {"move": "This move has already been reversed."}
    assert errors_of(stock.reverse_move, reverse.id) == {
        "move": "This move undoes another one: post a new move instead."
    }


def test_reverse_refused_when_the_stock_has_gone(here):
    toner = support.product()
    [receipt] = support.receive(toner, 2, here.shelf)
    stock.post_move(toner.id, 2, here.shelf.id, here.van.id, kind="transfer")
    db.session.commit()
    assert errors_of(stock.reverse_move, receipt.id) == {"quantity": "Only 0 pz of TK-5240K on hand at Shelf A."}
    assert stock.on_hand(toner.id, here.van.id) == 2


def test_count_books_the_difference_to_and_from_loss(here):
    toner, drum = support.product(), support.product("DK-1150")
    support.receive(toner, 10, here.shelf)
    support.receive(drum, 1, here.shelf)
    moves = stock.count_location(here.shelf.id, {toner.id: Decimal("8"), drum.id: Decimal("3")}, reference="Count Q4")
    db.session.commit()
    loss = locations.virtual("loss")
    assert sorted((m.product.code, m.from_location_id == loss.id, m.quantity) for m in moves) == [
        ("DK-1150", True, 2),
        ("TK-5240K", False, 2),
    ]
    assert stock.on_hand(toner.id, here.shelf.id) == 8
    assert stock.on_hand(drum.id, here.shelf.id) == 3
    assert stock.on_hand(toner.id, loss.id) == 2
    # Counting again what is there books nothing.
    assert stock.count_location(here.shelf.id, {toner.id: Decimal("8")}) == []


def test_count_refuses_a_negative_quantity_and_writes_nothing(here):
    toner = support.product()
    support.receive(toner, 1, here.shelf)
    errors = errors_of(stock.count_location, here.shelf.id, {toner.id: "-1"})
    assert errors == {f"counted.{toner.id}": "Must not be negative."}
    assert support.moves_count() == 1


# Serials


def test_serials_move_one_by_one_and_are_in_one_location(here):
    copier = support.product("M5526", serial_tracked=True)
    moves = support.receive(copier, 2, here.shelf, serials=["vcf001", "VCF002"])
    assert [(m.serial, m.quantity) for m in moves] == [("VCF001", 1), ("VCF002", 1)]
    stock.post_move(copier.id, 1, here.shelf.id, here.van.id, kind="transfer", serials=["VCF002"])
    db.session.commit()
    where = {s.serial: s.location_id for s in db.session.scalars(db.select(SerialNumber))}
    assert where == {"VCF001": here.shelf.id, "VCF002": here.van.id}
    assert stock.on_hand(copier.id, here.shelf.id) == 1 and stock.on_hand(copier.id, here.van.id) == 1


def test_a_serial_already_elsewhere_is_refused(here):
    copier = support.product("M5526", serial_tracked=True)
    support.receive(copier, 1, here.van, serials=["VCF001"])
    before = support.moves_count()
    assert errors_of(
        stock.post_move, copier.id, 1, here.shelf.id, here.warehouse.id, kind="transfer", serials=["VCF001"]
    ) == {"serials": "The serial number VCF001 is at Van Rossi, not at Shelf A."}
    # Received again from the supplier while it is in the van: still one place only.
    assert errors_of(
        stock.post_move,
        copier.id,
        1,
        locations.virtual("supplier").id,
        here.shelf.id,
        kind="receipt",
        serials=["VCF001"],
    ) == {"serials": "The serial number VCF001 is at Van Rossi, not at Supplier."}
    assert errors_of(stock.post_move, copier.id, 1, here.shelf.id, here.van.id, kind="transfer", serials=["NOPE"]) == {
        "serials": "The serial number NOPE is not at Shelf A."
    }
    assert support.moves_count() == before


def test_serial_count_must_match_the_quantity_and_untracked_take_none(here):
    copier, toner = support.product("M5526", serial_tracked=True), support.product()
    supplier = locations.virtual("supplier").id
    assert errors_of(stock.post_move, copier.id, 2, supplier, here.shelf.id, kind="receipt", serials=["A1"]) == {
        "serials": "Give one serial number per unit: 1 for a quantity of 2."
    }
    assert errors_of(stock.post_move, copier.id, 1, supplier, here.shelf.id, kind="receipt") == {
        "serials": "M5526 is tracked by serial number: give the serial numbers."
    }
    assert errors_of(stock.post_move, copier.id, "1.5", supplier, here.shelf.id, kind="receipt", serials=["A"]) == {
        "quantity": "A product tracked by serial number moves in whole units."
    }
    assert errors_of(stock.post_move, copier.id, 2, supplier, here.shelf.id, kind="receipt", serials=["A", "a"]) == {
        "serials": "The serial number A is given twice."
    }
    assert errors_of(stock.post_move, toner.id, 1, supplier, here.shelf.id, kind="receipt", serials=["X"]) == {
        "serials": "TK-5240K is not tracked by serial number."
    }


def test_a_delivered_serial_comes_back_by_a_return_and_a_reverse(here):
    copier = support.product("M5526", serial_tracked=True)
    support.receive(copier, 1, here.shelf, serials=["VCF001"])
    customer = locations.virtual("customer").id
    [delivery] = stock.post_move(
        copier.id, 1, here.shelf.id, customer, kind="delivery", serials=["VCF001"], partner_id=here.customer.id
    )
    db.session.commit()
    stock.reverse_move(delivery.id)
    db.session.commit()
    assert db.session.scalars(db.select(SerialNumber)).one().location_id == here.shelf.id


def test_count_of_serials_books_missing_and_found_units(here):
    copier = support.product("M5526", serial_tracked=True)
    support.receive(copier, 2, here.shelf, serials=["S1", "S2"])
    moves = stock.count_location(here.shelf.id, {}, serials={copier.id: ["S2", "S3"]})
    db.session.commit()
    loss = locations.virtual("loss").id
    assert sorted((m.serial, m.to_location_id == loss) for m in moves) == [("S1", True), ("S3", False)]
    where = {s.serial: s.location_id for s in db.session.scalars(db.select(SerialNumber))}
    assert where == {"S1": loss, "S2": here.shelf.id, "S3": here.shelf.id}
