"""CSV imports of products and opening stock (preview with row errors, all or nothing) and `flask inventory ...`."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from modules.inventory import imports, locations, reorder, stock
from modules.inventory.models import Product, SerialNumber
from modules.inventory.tests import support

PRODUCTS = """code,description,cost,sale_price,colour,yield_pages,serial_tracked,barcode
TK-5240K,Toner black,48.50,79.00,black,4000,no,632983051256
TK-5240C,Toner ciano,"62,00",99.00,cyan,3000,no,
M5526,Kyocera M5526cdw,390.00,0,,,yes,
"""


def product_codes() -> list[str]:
    return list(db.session.scalars(sa.select(Product.code).order_by(Product.code)))


def test_product_import_checks_every_row_and_writes_all_or_none(db_session):
    bad = PRODUCTS + "TK-5240Y,Toner giallo,-1,99.00,giallo,0,forse,632983051256\n"
    result = imports.run_import("products", bad, commit=True)
    assert not result.ok
    assert sorted(result.errors) == [
        (5, "barcode", "Another product already has the barcode 632983051256."),
        (5, "colour", "Choose one of: black, cyan, magenta, yellow"),
        (5, "cost", "Must not be negative."),
        (5, "serial_tracked", "Not yes or no: forse"),
        (5, "yield_pages", "Must be between 1 and 10000000."),
    ]
    assert product_codes() == []  # nothing written, not even the good rows
    preview = imports.run_import("products", PRODUCTS, commit=False)
    assert (preview.ok, preview.rows, product_codes()) == (True, 3, [])
    done = imports.run_import("products", PRODUCTS, commit=True)
    assert (done.ok, done.written) == (True, 3)
    cyan = db.session.scalars(sa.select(Product).where(Product.code == "TK-5240C")).one()
    assert (cyan.cost, cyan.colour, cyan.yield_pages, cyan.vat_rate) == (Decimal("62.00"), "cyan", 3000, Decimal("22"))
    # Importing again updates by code; nothing is new.
    again = imports.run_import("products", PRODUCTS.replace("Toner ciano", "Toner cyan"), commit=True)
    assert (again.ok, again.written) == (True, 0)
    db.session.expire_all()
    assert db.session.get(Product, cyan.id).description == "Toner cyan"


def test_opening_stock_import(db_session):
    here = support.place()
    imports.run_import("products", PRODUCTS, commit=True)
    text = (
        "product,location,quantity,serial\n"
        "TK-5240K,Main warehouse / Shelf A,12,\n"
        "632983051256,Van Rossi,2,\n"
        "M5526,Main warehouse,,VCF001\n"
        "M5526,Main warehouse,1,VCF001\n"
        "TK-5240C,Nowhere,1,\n"
        "TK-9999,Shelf A,1,\n"
        "TK-5240C,Shelf A,0,\n"
    )
    result = imports.run_import("opening_stock", text, commit=True)
    assert sorted(result.errors) == [
        (5, "serial", "The serial number VCF001 is at Main warehouse, not at Supplier."),
        (6, "location", "Unknown location: Nowhere"),
        (7, "product", "Unknown product: TK-9999"),
        (8, "quantity", "The quantity must be more than zero."),
    ]
    assert support.moves_count() == 0
    good = "\n".join(text.splitlines()[:4]) + "\n"
    assert imports.run_import("opening_stock", good, commit=True).ok
    toner = db.session.scalars(sa.select(Product).where(Product.code == "TK-5240K")).one()
    assert stock.on_hand(toner.id, here.shelf.id) == 12 and stock.on_hand(toner.id, here.van.id) == 2
    assert db.session.scalars(sa.select(SerialNumber)).one().location_id == here.warehouse.id


def test_cli_imports_count_on_hand_and_reorder(app, db_session, tmp_path):
    here = support.place()
    runner = app.test_cli_runner()
    products_csv = tmp_path / "products.csv"
    products_csv.write_text(PRODUCTS)
    checked = runner.invoke(args=["inventory", "import-products", str(products_csv), "--check"])
    assert checked.exit_code == 0 and "3 rows checked" in checked.output
    assert product_codes() == []
    assert runner.invoke(args=["inventory", "import-products", str(products_csv)]).exit_code == 0
    stock_csv = tmp_path / "stock.csv"
    stock_csv.write_text("product,location,quantity\nTK-5240K,Main warehouse / Shelf A,10\nTK-5240C,Nowhere,1\n")
    refused = runner.invoke(args=["inventory", "import-stock", str(stock_csv)])
    assert refused.exit_code == 1 and "line 3 [location]: Unknown location: Nowhere" in refused.output
    assert support.moves_count() == 0
    stock_csv.write_text("product,location,quantity\nTK-5240K,Main warehouse / Shelf A,10\n")
    assert runner.invoke(args=["inventory", "import-stock", str(stock_csv)]).exit_code == 0
    count_csv = tmp_path / "count.csv"
    count_csv.write_text("product,quantity\nTK-5240K,7\n")
    dry = runner.invoke(args=["inventory", "count", "Main warehouse / Shelf A", str(count_csv), "--dry-run"])
    assert dry.exit_code == 0 and "TK-5240K: -3" in dry.output
    counted = runner.invoke(args=["inventory", "count", "Shelf A", str(count_csv), "--reference", "Count Q4"])
    assert counted.exit_code == 0, counted.output
    db.session.expire_all()
    toner = db.session.scalars(sa.select(Product).where(Product.code == "TK-5240K")).one()
    assert stock.on_hand(toner.id, here.shelf.id) == 7
    assert stock.on_hand(toner.id, locations.virtual("loss").id) == 3
    listed = runner.invoke(args=["inventory", "on-hand", "--warehouse", "Main warehouse"])
    assert listed.output.splitlines() == ["TK-5240K\tMain warehouse / Shelf A\t7"]
    reorder.save_rule(None, product_id=toner.id, warehouse_id=here.warehouse.id, min_quantity="8", max_quantity="20")
    support.user("back_office", "magazzino@example.com")
    db.session.commit()
    report = runner.invoke(args=["inventory", "reorder", "--email"])
    assert "TK-5240K\tMain warehouse\torder 13" in report.output and "1 emails queued" in report.output
    unknown = runner.invoke(args=["inventory", "count", "Attic", str(count_csv)])
    assert unknown.exit_code == 1 and "unknown location: Attic" in unknown.output
