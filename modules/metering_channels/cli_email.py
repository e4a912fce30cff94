"""`flask metering import-email FILE...`: counter report emails saved as .eml files (or "-" for standard input)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from core.db import db
from modules.metering_channels import emails


@click.command("import-email")
@click.argument("files", nargs=-1, required=True)
@with_appcontext
def import_email(files: tuple[str, ...]) -> None:
    """Import counter report emails: each becomes a reading, or waits in the unmatched queue with its reason."""
    failed = 0
    for path in files:
        try:
            raw = click.get_binary_stream("stdin").read() if path == "-" else Path(path).read_bytes()
        except OSError as error:
            raise click.ClickException(f"{path}: {error.strerror}") from None
        counter_email, created = emails.receive(raw)
        db.session.commit()
        parts = [path, counter_email.state]
        if counter_email.serial:
            parts.append(counter_email.serial)
        if counter_email.reading_id:
            parts.append(f"reading {counter_email.reading_id}")
        if not created:
            parts.append("already imported")
        if counter_email.reason:
            parts.append(counter_email.reason)
        click.echo(": ".join(parts[:2]) + (" (" + "; ".join(parts[2:]) + ")" if parts[2:] else ""))
        failed += counter_email.state in emails.QUEUE_STATES
    if failed:
        raise SystemExit(1)


def add_commands(group: click.Group) -> None:
    group.add_command(import_email)
