"""`flask invoicing ...`: export a period's e-invoices for the intermediary, import the SdI receipts from files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask.cli import with_appcontext

from core.db import db
from core.validation import ValidationError
from modules.invoicing import einvoice_exchange


@click.group("invoicing", help="Invoices: the e-invoice exchange with the SdI.")
def invoicing_cli() -> None:
    pass


def _day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


@invoicing_cli.command("einvoice-export")
@click.option("--from", "date_from", required=True, help="First issue date, YYYY-MM-DD.")
@click.option("--to", "date_to", required=True, help="Last issue date, YYYY-MM-DD.")
@click.option("--output", required=True, type=click.Path(file_okay=False), help="Folder to write the zip into.")
@click.option("--resend", is_flag=True, help="Also the documents exported before and still without a receipt.")
@with_appcontext
def einvoice_export(date_from: str, date_to: str, output: str, resend: bool) -> None:
    """Write the zip of the period's e-invoices not sent yet (--resend: also those exported before); they become
    "exported"."""
    start, end = _day(date_from, "--from"), _day(date_to, "--to")
    folder = Path(output)
    try:
        result = einvoice_exchange.export_zip(start, end, resend=resend)
    except ValidationError as error:
        db.session.rollback()
        raise click.ClickException(error.messages({"date_from": "--from", "date_to": "--to"})) from None
    for number, reasons in result.refused.items():
        click.echo(f"refused {number}: {'; '.join(reasons)}", err=True)
    if not result.invoices:
        db.session.rollback()
        click.echo("nothing to export")
        raise SystemExit(1 if result.refused else 0)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / result.file_name).write_bytes(result.content)
    except OSError as error:
        db.session.rollback()
        raise click.ClickException(f"{output}: {error.strerror}") from None
    db.session.commit()
    numbers = ", ".join(str(invoice) for invoice in result.invoices)
    click.echo(f"{folder / result.file_name}: {len(result.invoices)} document(s) ({numbers})")
    if result.refused:
        raise SystemExit(1)


def _receipt_files(paths: tuple[str, ...]) -> list[tuple[str, bytes]]:
    files = []
    for value in paths:
        path = Path(value)
        if path.is_dir():
            chosen = sorted(
                item for item in path.iterdir() if item.is_file() and item.suffix.lower() in (".xml", ".zip")
            )
        elif path.is_file():
            chosen = [path]
        else:
            raise click.ClickException(f"{value}: no such file or folder")
        try:
            files.extend((item.name, item.read_bytes()) for item in chosen)
        except OSError as error:
            raise click.ClickException(f"{value}: {error.strerror}") from None
    return files


@invoicing_cli.command("einvoice-receipts")
@click.argument("paths", nargs=-1, required=True)
@with_appcontext
def einvoice_receipts(paths: tuple[str, ...]) -> None:
    """Import SdI receipts (files, folders of .xml/.zip files, zips): each sets its invoice's e-invoice state."""
    files = _receipt_files(paths)
    if not files:
        raise click.ClickException("no .xml or .zip receipt files found")
    outcomes = einvoice_exchange.import_receipts(files)
    db.session.commit()
    for outcome in outcomes:
        click.echo(f"{outcome.file_name}: {outcome.status}: {outcome.message}")
    if any(outcome.status == "error" for outcome in outcomes):
        raise SystemExit(1)
