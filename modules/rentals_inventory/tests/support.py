"""Helpers of the bridge tests: a customer with a device on a contract, toner products fitted to its model, stock in
a warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.models import Partner, User
from modules.inventory import locations, products, stock
from modules.inventory.models import Location, Product, StockQuant
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Consumable, Device
from modules.rentals_inventory.models import ProductFit

COLOUR_MODEL = ("Kyocera", "ECOSYS M5526cdw", ["bw", "color"])
MONO_MODEL = ("Kyocera", "ECOSYS P2040dn", ["bw"])


@dataclass
class Setup:
    customer: Partner
    device: Device
    warehouse: Location
    black: Product
    contract_id: int


def customer(name: str = "Studio Legale Bianchi") -> Partner:
    made = Partner(
        name=name,
        is_customer=True,
        vat_number="01234567897",
        street="Corso Italia 10",
        postal_code="10121",
        city="Torino",
        province="TO",
        country="IT",
        sdi_code="ABC1234",
        email="studio@bianchi.example",
        payment_terms_days=30,
        language="en",
    )
    db.session.add(made)
    db.session.commit()
    return made


def device(serial: str, model: tuple = COLOUR_MODEL) -> Device:
    maker, name, meters = model
    made = create_device({"serial": serial, "manufacturer": maker, "model": name, "meters": meters})
    db.session.commit()
    return made


def contract(partner: Partner, devices: list[Device], **terms) -> int:
    made = create_contract(
        {
            "customer_id": partner.id,
            "start_date": "2026-01-01",
            "period_months": 1,
            "fee": "0",
            **terms,
            "devices": [
                {"device_id": d.id, "counters": {meter: 1000 for meter in d.model.meter_codes}} for d in devices
            ],
        }
    )
    db.session.commit()
    return made.id


def toner(
    code: str, colour: str, model_of: Device, yield_pages: int | None = 4000, rated: int | None = None
) -> Product:
    """A toner product fitted to the device's model (and to a catalogue consumable when `rated` is given)."""
    made = products.save_product(
        None,
        code=code,
        description=f"Toner {colour} {code}",
        cost="40.00",
        sale_price="79.00",
        colour=colour,
        yield_pages=yield_pages,
    )
    consumable = None
    if rated is not None:
        consumable = Consumable(model_id=model_of.model_id, code=code, colour=colour, rated_yield=rated)
        db.session.add(consumable)
        db.session.flush()
    db.session.add(
        ProductFit(product_id=made.id, model_id=model_of.model_id, consumable_id=consumable.id if consumable else None)
    )
    db.session.commit()
    return made


def warehouse(name: str = "Magazzino centrale") -> Location:
    made = locations.save_location(None, name=name, kind="warehouse", parent_id=None, technician_id=None)
    db.session.commit()
    return made


def receive(item: Product, quantity, to: Location, serials=()) -> None:
    stock.post_move(
        item.id,
        Decimal(str(quantity)),
        locations.virtual("supplier").id,
        to.id,
        kind="receipt",
        reference="DDT 1",
        serials=serials,
    )
    db.session.commit()


def on_hand(item: Product, at: Location) -> Decimal:
    return db.session.scalar(
        sa.select(StockQuant.quantity).where(StockQuant.product_id == item.id, StockQuant.location_id == at.id)
    ) or Decimal(0)


def contact(partner: Partner, email: str = "anna@bianchi.example") -> User:
    made = User(email=email, name="Anna Bianchi", role="customer_user", customer_id=partner.id, language="en")
    db.session.add(made)
    db.session.commit()
    return made


def standard(consumables_included: bool = True, serial: str = "VCF1234567") -> Setup:
    """A customer with a colour device on a contract, a black toner fitted to it, 5 in the warehouse."""
    partner = customer()
    unit = device(serial)
    contract_id = contract(partner, [unit], consumables_included=consumables_included)
    store = warehouse()
    black = toner("TK-5240K", "black", unit)
    receive(black, 5, store)
    return Setup(partner, db.session.get(Device, unit.id), store, black, contract_id)
