"""Inventory demo data: a Milan warehouse with shelves, two technicians' vans, a supplier, the toners of the demo's
device models received from it (and a serial-tracked drum), vans loaded from the shelves, reorder rules with one
product to reorder and one order due. Idempotent: what exists is found by its code, name or document reference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from core import clock
from core.db import db
from core.demo import DEMO_PASSWORD
from core.models import Partner, User
from modules.inventory import locations, products, reorder, stock
from modules.inventory.models import ExpectedReceipt, Location, Product, ReorderRule, StockMove

SUPPLIER = "Ricambi Ufficio Italia Srl"
WAREHOUSE = "Magazzino Milano"
SHELVES = ("Scaffale A", "Scaffale B", "Scaffale C")
# The demo's technicians: core's, and a second one created here (both log in with the demo password).
TECHNICIANS = (
    ("tech@copydesk.local", "Tecnico Rossi", "Furgone FT 123 AB"),
    ("tech2@copydesk.local", "Tecnico Verdi", "Furgone GX 456 CD"),
)
RECEIPT = "DDT 2026/0412"  # the supplier's delivery note of the opening receipt; marks the demo's moves as loaded

# The consumables of rentals' demo catalogue (the same codes: the rentals_inventory bridge fits them to the models),
# code, description, colour, yield at 5%, cost, sale price, shelf, quantity received.
TONERS = (
    ("TK-1160", "Toner Kyocera TK-1160 nero", "black", 7200, "38.00", "69.00", 0, 14),
    ("CF289A", "Toner HP 89A nero", "black", 5000, "92.00", "149.00", 0, 8),
    ("TK-5240K", "Toner Kyocera TK-5240K nero", "black", 4000, "55.00", "95.00", 0, 10),
    ("TK-5240C", "Toner Kyocera TK-5240C ciano", "cyan", 3000, "68.00", "115.00", 1, 6),
    ("TK-5240M", "Toner Kyocera TK-5240M magenta", "magenta", 3000, "68.00", "115.00", 1, 6),
    ("TK-5240Y", "Toner Kyocera TK-5240Y giallo", "yellow", 3000, "68.00", "115.00", 1, 6),
    ("C-EXV54 BK", "Toner Canon C-EXV54 nero", "black", 15500, "45.00", "82.00", 0, 12),
    ("C-EXV54 C", "Toner Canon C-EXV54 ciano", "cyan", 8500, "79.00", "135.00", 1, 6),
    ("C-EXV54 M", "Toner Canon C-EXV54 magenta", "magenta", 8500, "79.00", "135.00", 1, 6),
    ("C-EXV54 Y", "Toner Canon C-EXV54 giallo", "yellow", 8500, "79.00", "135.00", 1, 6),
    ("842311", "Toner Ricoh IM C3000 nero", "black", 33000, "61.00", "105.00", 0, 6),
    ("842314", "Toner Ricoh IM C3000 ciano", "cyan", 18000, "120.00", "199.00", 1, 4),
    ("842313", "Toner Ricoh IM C3000 magenta", "magenta", 18000, "120.00", "199.00", 1, 4),
    ("842312", "Toner Ricoh IM C3000 giallo", "yellow", 18000, "120.00", "199.00", 1, 4),
    ("TN-328K", "Toner Konica Minolta TN-328K nero", "black", 28000, "72.00", "125.00", 0, 3),
)
DRUM = ("DK-1150", "Tamburo Kyocera DK-1150", 100000, "95.00", "160.00")
DRUM_SERIALS = ("LVX3Z00101", "LVX3Z00102", "LVX3Z00103", "LVX3Z00104")
# What each van was loaded with from the shelves: (code, quantity) or (code, serials).
VAN_LOADS = (
    (("TK-1160", 3), ("TK-5240K", 2), ("TK-5240C", 1), ("TK-5240M", 1), ("TK-5240Y", 1), ("DK-1150", DRUM_SERIALS[:2])),
    (("C-EXV54 BK", 2), ("C-EXV54 C", 1), ("CF289A", 1), ("842311", 1)),
)


def ean13(number: str) -> str:
    """The 12 digits with their EAN-13 check digit."""
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(number))
    return number + str((10 - total % 10) % 10)


def load_demo() -> None:
    supplier = _supplier()
    technicians = [_technician(email, name) for email, name, _van in TECHNICIANS]
    warehouse = _location(WAREHOUSE, "warehouse")
    shelves = [_location(name, "shelf", parent=warehouse) for name in SHELVES]
    vans = [
        _location(van, "van", technician=technician)
        for technician, (_email, _name, van) in zip(technicians, TECHNICIANS, strict=True)
    ]
    found = {product.code: product for product in db.session.scalars(sa.select(Product))}
    for index, (code, description, colour, pages, cost, price, _shelf, _quantity) in enumerate(TONERS):
        if code not in found:
            found[code] = products.save_product(
                None,
                code=code,
                description=description,
                barcode=ean13(f"80123450{index:04d}"),
                colour=colour,
                yield_pages=pages,
                cost=Decimal(cost),
                sale_price=Decimal(price),
            )
    code, description, pages, cost, price = DRUM
    if code not in found:
        found[code] = products.save_product(
            None,
            code=code,
            description=description,
            barcode=ean13("801234509999"),
            serial_tracked=True,
            yield_pages=pages,
            cost=Decimal(cost),
            sale_price=Decimal(price),
        )
    db.session.commit()
    if db.session.scalar(sa.select(StockMove.id).where(StockMove.reference == RECEIPT).limit(1)) is None:
        _stock(found, supplier, shelves, vans)
    _rules(found, warehouse)
    db.session.commit()


def _supplier() -> Partner:
    supplier = db.session.scalar(sa.select(Partner).where(Partner.name == SUPPLIER))
    if supplier is None:
        supplier = Partner(
            name=SUPPLIER,
            is_customer=False,
            is_supplier=True,
            vat_number="01234560157",
            street="Via dell'Industria 12",
            city="Sesto San Giovanni",
            postal_code="20099",
            province="MI",
            country="IT",
            email="ordini@ricambiufficio.example",
            language="it",
        )
        db.session.add(supplier)
        db.session.flush()
    return supplier


def _technician(email: str, name: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        user = User(
            email=email,
            name=name,
            role="technician",
            language="it",
            password_hash=generate_password_hash(DEMO_PASSWORD, method="scrypt"),
        )
        db.session.add(user)
        db.session.flush()
    return user


def _location(name: str, kind: str, parent: Location | None = None, technician: User | None = None) -> Location:
    query = sa.select(Location).where(Location.name == name, Location.kind == kind)
    location = db.session.scalar(query)
    if location is None:
        location = locations.save_location(
            None,
            name=name,
            kind=kind,
            parent_id=parent.id if parent else None,
            technician_id=technician.id if technician else None,
        )
    return location


def _stock(found: dict[str, Product], supplier: Partner, shelves: list[Location], vans: list[Location]) -> None:
    """The opening receipt two months ago, the drums a week later, the vans loaded last week."""
    today = clock.today()
    supplier_location = locations.virtual("supplier").id
    for code, _description, _colour, _pages, _cost, _price, shelf, quantity in TONERS:
        stock.post_move(
            found[code].id,
            Decimal(quantity),
            supplier_location,
            shelves[shelf].id,
            kind="receipt",
            move_date=today - dt.timedelta(days=60),
            reference=RECEIPT,
            partner_id=supplier.id,
        )
    stock.post_move(
        found[DRUM[0]].id,
        Decimal(len(DRUM_SERIALS)),
        supplier_location,
        shelves[2].id,
        kind="receipt",
        move_date=today - dt.timedelta(days=53),
        reference="DDT 2026/0467",
        serials=DRUM_SERIALS,
        partner_id=supplier.id,
    )
    shelf_of = {code: shelves[shelf] for code, *_rest, shelf, _quantity in TONERS}
    shelf_of[DRUM[0]] = shelves[2]
    for van, loads in zip(vans, VAN_LOADS, strict=True):
        for code, amount in loads:
            serials = amount if isinstance(amount, tuple) else ()
            stock.post_move(
                found[code].id,
                Decimal(len(serials)) if serials else Decimal(amount),
                shelf_of[code].id,
                van.id,
                kind="transfer",
                move_date=today - dt.timedelta(days=7),
                serials=serials,
            )
    db.session.commit()


def _rules(found: dict[str, Product], warehouse: Location) -> None:
    """A rule per toner (TN-328K, three received, falls below its minimum: the dashboard's card shows it) and one
    order due from the supplier for the Ricoh black."""
    for code, *_rest in TONERS:
        product = found[code]
        exists = db.session.scalar(
            sa.select(ReorderRule.id).where(
                ReorderRule.product_id == product.id, ReorderRule.warehouse_id == warehouse.id
            )
        )
        if exists is None:
            reorder.save_rule(
                None, product_id=product.id, warehouse_id=warehouse.id, min_quantity=4, max_quantity=12, multiple=2
            )
    if db.session.scalar(sa.select(ExpectedReceipt.id).limit(1)) is None:
        reorder.expect_receipt(
            found["842311"].id,
            warehouse.id,
            Decimal(6),
            expected_date=clock.today() + dt.timedelta(days=5),
            reference="Ordine 2026/118",
        )
