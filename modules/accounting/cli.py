"""`flask accounting ...`: post the entries of invoices posted before accounting was enabled."""

import click
from flask.cli import AppGroup

accounting_cli = AppGroup("accounting", help="Accounting: the ledger fed by invoicing.")


@accounting_cli.command("backfill")
def backfill_command() -> None:
    """Post the sales entry of every posted invoice and credit note that has none (idempotent)."""
    from core.db import db
    from core.validation import ValidationError
    from modules.accounting import postings

    try:
        count = postings.backfill()
    except ValidationError as error:
        db.session.rollback()
        raise click.ClickException(f"nothing posted: {error.messages()}") from None
    db.session.commit()
    click.echo(f"Posted {count} entries.")
