"""CSV import of products (created or updated by code) and of opening stock: every row checked, all rows or none.

Rows go through the same functions as the admin, the API and the CLI (products.save_product, stock.post_move) in one
transaction (core.csv_import.Importer), so a row sees the rows before it (a serial twice in the file is caught).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.csv_import import Column, Importer, ImportResult, Problem, Row, Template, Written
from core.db import db
from core.models import User
from core.validation import ValidationError
from modules.inventory.locations import find_location, virtual
from modules.inventory.models import COLOURS
from modules.inventory.products import lookup, product_by_code, save_product
from modules.inventory.stock import post_move

YES_NO = _l("yes or no")


class ProductImporter(Importer):
    """One product per row: a code already known updates that product, a new code creates one."""

    kind = "products"
    title = _l("Products")
    permission = "inventory.edit"
    description = _l("A code already known updates that product; a new code creates one.")
    columns = (
        Column("code", _l("The product's code (SKU)."), required=True, example="TK-5240K"),
        Column("description", required=True, example="Toner black Kyocera TK-5240K"),
        Column("unit", _l("Unit of measure (default pz)."), example="pz"),
        Column("barcode", _l("EAN or other barcode, unique."), example="632983051256"),
        Column("cost", _l("Purchase cost, e.g. 48.50."), example="48.50"),
        Column("sale_price", _l("Sale price, e.g. 79.00."), example="79.00"),
        Column("vat_rate", _l("VAT rate in percent (default 22)."), example="22"),
        Column("serial_tracked", YES_NO, example="no"),
        Column("colour", _l("Toner colour: %(colours)s, or empty.", colours=", ".join(COLOURS)), example="black"),
        Column("yield_pages", _l("Pages at 5 percent coverage (ISO/IEC 19752, 19798)."), example="4000"),
        Column("active", YES_NO, example="yes"),
    )
    templates = (
        Template(
            "products",
            _l("products"),
            tuple(column.name for column in columns),
            (
                (
                    "TK-5240K",
                    "Toner black Kyocera TK-5240K",
                    "pz",
                    "632983051256",
                    "48.50",
                    "79.00",
                    "22",
                    "no",
                    "black",
                    "4000",
                    "yes",
                ),
                (
                    "TK-5240C",
                    "Toner cyan Kyocera TK-5240C",
                    "pz",
                    "",
                    "62.00",
                    "99.00",
                    "22",
                    "no",
                    "cyan",
                    "3000",
                    "yes",
                ),
                ("ECOSYS-M5526", "Kyocera ECOSYS M5526cdw", "pz", "", "390.00", "0", "22", "yes", "", "", "yes"),
            ),
            file_name="copydesk-products.csv",
        ),
    )

    def write(self, entry: Row) -> Written:
        cells = entry.cells
        existing = product_by_code(cells.get("code", ""))
        values: dict[str, Any] = {name: cells[name] for name in cells if name in {c.name for c in self.columns}}
        for name in ("barcode", "colour", "yield_pages"):
            if name in values and not values[name]:
                values[name] = None
        for name in ("unit", "cost", "sale_price", "vat_rate", "serial_tracked", "active"):
            if name in values and not values[name] and existing is None:
                values.pop(name)
        save_product(existing, **values)
        return Written(new=existing is None)


STOCK_COLUMNS = {
    "product": "product",
    "to_location": "location",
    "from_location": "location",
    "serials": "serial",
    "quantity": "quantity",
    "reference": "reference",
    "move_date": "move_date",
    "kind": "location",
}


class OpeningStockImporter(Importer):
    """What is on the shelves when Copydesk starts: each row a receipt from the supplier into a location."""

    kind = "opening_stock"
    title = _l("Opening stock")
    permission = "inventory.edit"
    description = _l(
        "Each row is booked as a receipt from the supplier. A product tracked by serial number takes one row per "
        "serial number."
    )
    columns = (
        Column("product", _l("The product's code or barcode."), required=True, example="TK-5240K"),
        Column(
            "location",
            _l("Where it is: its path (Main warehouse / Shelf A) or its name."),
            required=True,
            example="Main warehouse / Shelf A",
        ),
        Column("quantity", _l("How many (1 or empty for a serial number)."), example="12"),
        Column("serial", _l("The serial number, for a product tracked by serial number.")),
        Column("reference", _l("A reference for the move (default: Opening stock).")),
        Column("move_date", _l("A date as YYYY-MM-DD (default: today).")),
    )
    templates = (
        Template(
            "opening_stock",
            _l("opening stock"),
            ("product", "location", "quantity", "serial"),
            (
                ("TK-5240K", "Main warehouse / Shelf A", "12", ""),
                ("TK-5240C", "Main warehouse / Shelf A", "6", ""),
                ("ECOSYS-M5526", "Main warehouse", "1", "VCF5Z01234"),
            ),
            file_name="copydesk-opening-stock.csv",
        ),
    )

    def write(self, entry: Row) -> Written:
        cells = entry.cells
        errors: dict[str, str] = {}
        found = lookup(cells.get("product", ""))
        if found is None:
            errors["product"] = _("Unknown product: %(code)s", code=cells.get("product", "")[:60])
        location = find_location(cells.get("location", ""))
        if location is None:
            errors["location"] = _("Unknown location: %(name)s", name=cells.get("location", "")[:100])
        if errors:
            raise ValidationError(errors)
        serial = cells.get("serial") or ""
        quantity = cells.get("quantity") or ("1" if serial else "")
        user = db.session.get(User, self.user_id) if self.user_id else None
        post_move(
            found.product.id,
            quantity,
            virtual("supplier").id,
            location.id,
            kind="receipt",
            move_date=cells.get("move_date") or None,
            reference=cells.get("reference") or _("Opening stock"),
            serials=[serial] if serial else (),
            user=user,
        )
        return Written()

    def place(self, entry: Row, name: str, message: str) -> Problem:
        return entry.line, STOCK_COLUMNS.get(name, name), message


IMPORTERS = {importer.kind: importer for importer in (ProductImporter, OpeningStockImporter)}


def run_import(kind: str, text: str, commit: bool, user_id: int | None = None) -> ImportResult:
    """Check (and with `commit`, write) a products or opening-stock file: all rows or none."""
    return IMPORTERS[kind](user_id).run(text, commit)
