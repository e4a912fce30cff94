"""`flask inventory ...`: inventory counts, CSV imports of products and opening stock, on-hand, what to reorder."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import click
from flask.cli import with_appcontext

from core.csv_files import decode
from core.db import db
from core.validation import ValidationError
from modules.inventory import imports, locations, reorder, stock
from modules.inventory.products import lookup


@click.group("inventory", help="Stock: counts, CSV imports, on-hand, what to reorder.")
def inventory_cli() -> None:
    pass


def _location(text: str):
    location = locations.find_location(text)
    if location is None and text.isdigit():
        location = db.session.get(locations.Location, int(text))
    if location is None:
        raise click.ClickException(f"unknown location: {text} (give its path, e.g. 'Main warehouse / Shelf A')")
    return location


def _read(path: str) -> str:
    data = click.get_binary_stream("stdin").read() if path == "-" else Path(path).read_bytes()
    try:
        return decode(data)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def _refused(error: ValidationError) -> click.ClickException:
    return click.ClickException("refused: " + "; ".join(f"{field}: {msg}" for field, msg in error.errors.items()))


@inventory_cli.command(
    "count",
    help="Book an inventory count of LOCATION from FILE (CSV: product,quantity or "
    "product,serial; '-' reads stdin). Products not in the file are not counted.",
)
@click.argument("location")
@click.argument("file")
@click.option("--reference", default=None, help="Reference of the count moves (e.g. 'Count 2026-12').")
@click.option("--dry-run", is_flag=True, help="Show the differences; book nothing.")
@with_appcontext
def count_command(location: str, file: str, reference: str | None, dry_run: bool) -> None:
    place = _location(location)
    rows = list(csv.DictReader(io.StringIO(_read(file))))
    counted: dict[int, Decimal | str] = {}
    serials: dict[int, list[str]] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        code = (row.get("product") or "").strip()
        found = lookup(code)
        if found is None:
            problems.append(f"line {line}: unknown product {code!r}")
            continue
        product = found.product
        if product.serial_tracked:
            serial = (row.get("serial") or found.serial or "").strip()
            if not serial:
                problems.append(f"line {line}: {product.code} is tracked by serial number: give the serial")
                continue
            serials.setdefault(product.id, []).append(serial)
        else:
            quantity = (row.get("quantity") or "").strip()
            previous = counted.get(product.id)
            try:
                counted[product.id] = Decimal(quantity.replace(",", ".")) + Decimal(previous or 0)
            except ArithmeticError:
                problems.append(f"line {line}: not a quantity: {quantity!r}")
    if problems:
        raise click.ClickException("; ".join(problems))
    try:
        moves = stock.count_location(place.id, counted, None, serials=serials, reference=reference)
    except ValidationError as error:
        db.session.rollback()
        raise _refused(error) from None
    for move in moves:
        sign = "+" if move.to_location_id == place.id else "-"
        serial = f" {move.serial}" if move.serial else ""
        click.echo(f"{move.product.code}{serial}: {sign}{stock.qty(move.quantity)}")
    if dry_run:
        db.session.rollback()
        click.echo(f"dry run: {len(moves)} count moves not booked")
    else:
        db.session.commit()
        click.echo(f"{len(moves)} count moves booked at {locations.path_name(place)}")


def _import(kind: str, file: str, check_only: bool) -> None:
    result = imports.run_import(kind, _read(file), commit=not check_only)
    for line, column, message in result.errors:
        click.echo(f"line {line}{f' [{column}]' if column else ''}: {message}", err=True)
    for line, _column, message in result.notes:
        click.echo(f"line {line}: {message}")
    if not result.ok:
        raise click.ClickException(f"{len(result.errors)} errors in {result.rows} rows: nothing was written")
    if check_only:
        click.echo(f"{result.rows} rows checked: no errors (nothing written, --check)")
    else:
        click.echo(f"{result.rows} rows imported")


@inventory_cli.command("import-products", help="Import products from a CSV FILE ('-' reads stdin): all rows or none.")
@click.argument("file")
@click.option("--check", "check_only", is_flag=True, help="Check every row and report errors; write nothing.")
@with_appcontext
def import_products_command(file: str, check_only: bool) -> None:
    _import("products", file, check_only)


@inventory_cli.command("import-stock", help="Import opening stock from a CSV FILE ('-' reads stdin): all or none.")
@click.argument("file")
@click.option("--check", "check_only", is_flag=True, help="Check every row and report errors; write nothing.")
@with_appcontext
def import_stock_command(file: str, check_only: bool) -> None:
    _import("opening_stock", file, check_only)


@inventory_cli.command("on-hand", help="On-hand stock at warehouses, shelves and vans.")
@click.option("--product", "product_code", default=None, help="A product code or barcode.")
@click.option("--location", "location_text", default=None, help="That location only.")
@click.option("--warehouse", "warehouse_text", default=None, help="A warehouse (or any location) and what is under it.")
@with_appcontext
def on_hand_command(product_code: str | None, location_text: str | None, warehouse_text: str | None) -> None:
    product_id = None
    if product_code:
        found = lookup(product_code)
        if found is None:
            raise click.ClickException(f"unknown product: {product_code}")
        product_id = found.product.id
    location_id = _location(location_text).id if location_text else None
    warehouse_id = _location(warehouse_text).id if warehouse_text else None
    every = locations.all_locations()
    rows = stock.stock_rows(product_id, location_id, warehouse_id)
    for row in rows:
        click.echo(f"{row.product.code}\t{locations.path_name(row.location, every)}\t{stock.qty(row.quantity)}")
    if not rows:
        click.echo("no stock")


@inventory_cli.command("reorder", help="What to order by the reorder rules; --email queues the report to the staff.")
@click.option("--email", is_flag=True, help="Email the list to the warehouse staff (once a day each).")
@with_appcontext
def reorder_command(email: bool) -> None:
    found = reorder.suggestions()
    for s in found:
        click.echo(
            f"{s.product.code}\t{s.warehouse.name}\torder {stock.qty(s.order_quantity)}\t"
            f"(on hand {stock.qty(s.on_hand)}, incoming {stock.qty(s.incoming)}, "
            f"min {stock.qty(s.minimum)}, max {stock.qty(s.maximum)})"
        )
    if not found:
        click.echo("nothing to reorder")
    if email:
        sent = reorder.send_reorder_report()
        db.session.commit()
        click.echo(f"{sent} emails queued")
