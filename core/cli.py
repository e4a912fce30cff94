"""`flask modules ...`, `flask demo load` and `flask backup create|restore`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core.loader import dependency_closure, dependents
from core.migrate import upgrade_enabled
from core.module_state import record_states, resolve_for_app, set_requested

modules_cli = AppGroup("modules", help="List, enable and disable add-on modules.")
demo_cli = AppGroup("demo", help="Demo data.")
backup_cli = AppGroup("backup", help="Back up and restore the database (SQLite or PostgreSQL).")


@modules_cli.command("list")
def list_modules() -> None:
    """Every module folder with its version, state and reason."""
    resolution = resolve_for_app(current_app)
    click.echo(f"{'name':<20} {'version':<9} {'state':<9} reason")
    for name, status in resolution.statuses.items():
        click.echo(f"{name:<20} {status.manifest.version:<9} {status.state:<9} {status.reason}")


@modules_cli.command("enable")
@click.argument("name")
def enable_module(name: str) -> None:
    """Request NAME (and what it depends on) and create its tables; effective at the next start."""
    resolution = resolve_for_app(current_app)
    statuses = resolution.statuses
    if name not in statuses:
        raise click.ClickException(f"there is no module named {name!r}; see `flask modules list`")
    manifests = {n: s.manifest for n, s in statuses.items()}
    missing = [d for d in dependency_closure(name, manifests) if d not in manifests]
    if missing:
        raise click.ClickException(f"{name} depends on {', '.join(missing)}, which is not installed")
    wanted = [name, *sorted(d for d in dependency_closure(name, manifests) if statuses[d].state != "enabled")]
    set_requested(wanted, True)
    resolution = resolve_for_app(current_app)
    status = resolution.statuses[name]
    if status.state != "enabled":
        raise click.ClickException(f"{name} stays {status.state}: {status.reason}")
    upgrade_enabled(resolution)
    record_states(resolution, current_app.config["COPYDESK_MODULES"])
    click.echo(f"Enabled: {', '.join(wanted)}. Restart the web server and the workers to use it.")


@modules_cli.command("disable")
@click.argument("name")
@click.option("--with-dependents", is_flag=True, help="Also disable the modules that depend on NAME.")
def disable_module(name: str, with_dependents: bool) -> None:
    """Stop using NAME; its tables and data are kept. Effective at the next start."""
    resolution = resolve_for_app(current_app)
    if name not in resolution.statuses:
        raise click.ClickException(f"there is no module named {name!r}; see `flask modules list`")
    manifests = {n: s.manifest for n, s in resolution.statuses.items()}
    users = dependents(name, manifests, resolution.order)
    if users and not with_dependents:
        raise click.ClickException(
            f"{', '.join(users)} depend on {name}; disable them first, or pass --with-dependents to disable them too"
        )
    set_requested([name, *users], False)
    click.echo(f"Disabled: {', '.join([name, *users])}. Their data is kept. Restart the web server and the workers.")


@demo_cli.command("load")
@click.option("--if-new", is_flag=True, help="Only on a new database (no company record yet).")
def load_demo(if_new: bool) -> None:
    """Load a realistic dealer: core's part, then each enabled module's. Safe to run twice."""
    import sqlalchemy as sa

    from core.db import db
    from core.demo import load_core_demo
    from core.models import Company

    if if_new and db.session.scalar(sa.select(Company.id)) is not None:
        click.echo("Existing database: demo data not loaded.")
        return
    load_core_demo()
    for module, loader in current_app.extensions["copydesk"].demo_loaders:
        loader()
        click.echo(f"demo data loaded: {module}")
    click.echo("Demo data is loaded.")


@demo_cli.command("logins")
def demo_logins() -> None:
    """Print the demo accounts and their password."""
    from core.demo import DEMO_LOGINS, DEMO_PASSWORD

    for email, _name, role, _customer in DEMO_LOGINS:
        click.echo(f"  {role:<15} {email:<28} password: {DEMO_PASSWORD}")


@backup_cli.command("create")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def create_backup_command(path: Path | None) -> None:
    """Write a backup of the database to PATH (default: instance/backups/copydesk-<UTC time>); the app keeps running."""
    from core.backup import BackupError, create_backup
    from core.db import db

    if path is None:
        suffix = "sqlite" if db.engine.url.get_backend_name() == "sqlite" else "dump"
        name = f"copydesk-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.{suffix}"
        path = Path(current_app.config["INSTANCE_DIR"]) / "backups" / name
    try:
        create_backup(db.engine, path)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backup written: {path}")


@backup_cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def restore_backup_command(path: Path) -> None:
    """Restore the backup PATH into the configured database, which must be new and empty."""
    from core.backup import BackupError, restore_backup
    from core.db import db

    try:
        restore_backup(db.engine, path)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Restored {path}. Start the web server and the workers.")


def init_app(app: Flask) -> None:
    from core.migrate import db_cli

    app.cli.add_command(modules_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(backup_cli)
    app.cli.add_command(db_cli)
