"""A device installed from stock moves its serial out of the warehouse; the van page delivers into a device."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from modules.inventory import locations, products, van
from modules.inventory.models import SerialNumber, StockMove
from modules.rentals.contract_lines import add_device
from modules.rentals.models import Contract
from modules.rentals_inventory.models import ProductFit, Shipment
from modules.rentals_inventory.tests import support


def machine_in_stock(serial: str, model_of) -> tuple:
    """A serial-tracked product for the device's model, one unit (that serial) received into the warehouse."""
    store = support.warehouse()
    machine = products.save_product(
        None, code="M5526CDW", description="Kyocera ECOSYS M5526cdw", serial_tracked=True, cost="300.00"
    )
    db.session.add(ProductFit(product_id=machine.id, model_id=model_of.model_id))
    db.session.commit()
    support.receive(machine, 1, store, serials=[serial])
    return store, machine


def serial_location(serial: str) -> str:
    unit = db.session.scalar(sa.select(SerialNumber).where(SerialNumber.serial == serial))
    return unit.location.kind


def test_installing_a_device_from_stock_moves_its_serial_to_the_customer(db_session):
    partner = support.customer()
    unit = support.device("VCF1234567")
    store, machine = machine_in_stock("VCF1234567", unit)
    assert serial_location("VCF1234567") == "warehouse"

    support.contract(partner, [unit])

    assert serial_location("VCF1234567") == "customer"
    assert support.on_hand(machine, store) == Decimal(0)
    delivery = db.session.scalar(sa.select(StockMove).where(StockMove.kind == "delivery"))
    assert (delivery.serial, delivery.partner_id, delivery.move_date) == (
        "VCF1234567",
        partner.id,
        unit.installations[0].start_date,
    )


def test_an_installation_rolled_back_leaves_the_serial_in_the_warehouse(db_session):
    partner = support.customer()
    unit = support.device("VCF1234567")
    machine_in_stock("VCF1234567", unit)
    contract = db.session.get(Contract, support.contract(partner, []))

    add_device(contract, unit.id, "2026-02-01", {"bw": 10, "color": 5})
    db.session.flush()
    db.session.rollback()
    db.session.commit()

    assert serial_location("VCF1234567") == "warehouse"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StockMove)) == 1  # the receipt


def test_a_device_whose_serial_is_not_in_stock_installs_as_before(db_session):
    partner = support.customer()
    unit = support.device("VCF1234567")

    support.contract(partner, [unit])

    assert unit.status == "installed"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StockMove)) == 0


def test_the_van_page_delivers_into_a_device_found_by_its_serial_as_a_shipment(db_session):
    s = support.standard()
    technician = support.User(email="marco@dealer.example", name="Marco", role="technician")
    db.session.add(technician)
    db.session.commit()
    own_van = locations.save_location(None, name="Furgone Marco", kind="van", technician_id=technician.id)
    db.session.commit()
    support.receive(s.black, 2, own_van)

    delivered = van.deliver(own_van, "TK-5240K", "1", device_text="vcf 1234567", user=technician)
    db.session.commit()

    shipment = db.session.scalar(sa.select(Shipment))
    assert delivered.to == str(s.device)
    assert (shipment.device_id, shipment.from_location_id, shipment.quantity) == (s.device.id, own_van.id, Decimal(1))
    assert support.on_hand(s.black, own_van) == Decimal(1)
