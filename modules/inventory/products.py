"""Products: create and change them with their checks; find one by code, barcode or a serial number (scanning)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.db import db
from modules.inventory.models import COLOURS, Product, SerialNumber, StockMove
from modules.inventory.validation import MAX_MONEY, Checker

COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}
_BARCODE_RE = re.compile(r"[0-9A-Za-z\-.]{1,20}")
MAX_YIELD = 10_000_000

FIELDS = (
    "code",
    "description",
    "unit",
    "barcode",
    "cost",
    "sale_price",
    "vat_rate",
    "serial_tracked",
    "colour",
    "yield_pages",
    "active",
)


def save_product(product: Product | None, **values: Any) -> Product:
    """Create (`product` None) or change a product; a field left out keeps its value (a new product its default).

    Fields in errors: `code`, `description`, `unit`, `barcode`, `cost`, `sale_price`, `vat_rate`, `serial_tracked`,
    `colour`, `yield_pages`. A product that has moved keeps whether it is tracked by serial number.
    """
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown product fields: {sorted(unknown)}")
    current = {name: getattr(product, name) for name in FIELDS} if product is not None else _defaults()
    merged = {**current, **values}
    check = Checker()
    code = check.text("code", merged["code"], 40, required=True)
    description = check.text("description", merged["description"], 200, required=True)
    unit = check.text("unit", merged["unit"], 10) or "pz"
    barcode = check.text("barcode", merged["barcode"], 20)
    if barcode is not None and not _BARCODE_RE.fullmatch(barcode):
        check.fail("barcode", _("A barcode has letters, digits, dashes and dots only."))
    cost = check.number("cost", merged["cost"], 2, MAX_MONEY, required=False) or Decimal("0")
    sale_price = check.number("sale_price", merged["sale_price"], 2, MAX_MONEY, required=False) or Decimal("0")
    vat_rate = check.number("vat_rate", merged["vat_rate"], 2, Decimal("100.01"), required=False)
    if vat_rate is None and "vat_rate" not in check:
        vat_rate = Decimal("22")
    serial_tracked = check.boolean("serial_tracked", merged["serial_tracked"])
    colour = check.choice("colour", (merged["colour"] or "").strip().lower() or None, COLOURS, required=False)
    yield_pages = check.integer("yield_pages", merged["yield_pages"], 1, MAX_YIELD, required=False)
    active = check.boolean("active", merged["active"], default=True)
    if code and _taken(Product.code, code, product):
        check.fail("code", _("Another product already has the code %(code)s.", code=code))
    if barcode and _taken(Product.barcode, barcode, product):
        check.fail("barcode", _("Another product already has the barcode %(barcode)s.", barcode=barcode))
    if (
        product is not None
        and product.id is not None
        and serial_tracked != product.serial_tracked
        and _has_moves(product)
    ):
        check.fail("serial_tracked", _("A product that has moved keeps whether it is tracked by serial number."))
    check.raise_if_any()
    if product is None:
        product = Product()
        db.session.add(product)
    product.code = code
    product.description = description
    product.unit = unit
    product.barcode = barcode
    product.cost = cost
    product.sale_price = sale_price
    product.vat_rate = vat_rate
    product.serial_tracked = serial_tracked
    product.colour = colour
    product.yield_pages = yield_pages
    product.active = active
    db.session.flush()
    return product


def _defaults() -> dict[str, Any]:
    return {
        "code": None,
        "description": None,
        "unit": "pz",
        "barcode": None,
        "cost": Decimal("0"),
        "sale_price": Decimal("0"),
        "vat_rate": Decimal("22"),
        "serial_tracked": False,
        "colour": None,
        "yield_pages": None,
        "active": True,
    }


def _taken(column: Any, value: str, product: Product | None) -> bool:
    query = sa.select(Product.id).where(sa.func.lower(column) == value.lower())
    if product is not None and product.id is not None:
        query = query.where(Product.id != product.id)
    return db.session.scalar(query.limit(1)) is not None


def _has_moves(product: Product) -> bool:
    return db.session.scalar(sa.select(StockMove.id).where(StockMove.product_id == product.id).limit(1)) is not None


def product_by_code(code: str) -> Product | None:
    """The product with this code (SKU), ignoring case."""
    text = (code or "").strip()
    if not text:
        return None
    return db.session.scalars(sa.select(Product).where(sa.func.lower(Product.code) == text.lower())).first()


@dataclass(frozen=True)
class Scanned:
    """What a scanned or typed code names: a product, and the serial number when the code was one."""

    product: Product
    serial: str | None = None


def lookup(text: str, location_id: int | None = None) -> Scanned | None:
    """The product a scanned or typed code names: its barcode, its code, or the serial number of one of its units.

    A serial found in several products (two makers may share one) is taken at `location_id` when given.
    """
    code = (text or "").strip()
    if not code or len(code) > 60:
        return None
    product = db.session.scalars(sa.select(Product).where(Product.barcode == code)).first() or product_by_code(code)
    if product is not None:
        return Scanned(product)
    query = sa.select(SerialNumber).where(sa.func.upper(SerialNumber.serial) == code.upper())
    serials = list(db.session.scalars(query))
    if location_id is not None and len(serials) > 1:
        serials = [serial for serial in serials if serial.location_id == location_id] or serials
    if len(serials) >= 1:
        return Scanned(serials[0].product, serials[0].serial)
    return None
