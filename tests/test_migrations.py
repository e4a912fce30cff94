"""Schema changes go through Alembic, one branch per module; upgrading keeps data; models match migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import make_app, migrate
from core.db import db
from core.migrate import table_owner
from core.models import Partner


def tables(app) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def test_upgrade_on_an_empty_database_creates_core_and_enabled_modules(empty_db_url):
    app = make_app(empty_db_url)
    migrate(app)
    names = tables(app)
    assert {"core_partner", "core_user", "core_outbox_message", "core_job", "rentals_device"} <= names


def test_models_and_migrations_agree(app):
    """A model changed without a migration shows up here as a difference."""
    enabled = {"core", *app.extensions["copydesk"].resolution.order}
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, type_, parents: type_ != "table" or table_owner(name) in enabled,
                "include_object": lambda obj, name, type_, reflected, compare_to: (
                    type_ != "table" or table_owner(name) in enabled
                ),
            },
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_enabling_a_module_later_creates_its_tables_and_keeps_other_data(empty_db_url):
    app = make_app(empty_db_url, COPYDESK_MODULES=[])
    migrate(app)
    assert "rentals_device" not in tables(app)
    with app.app_context():
        db.session.add(Partner(name="Studio Rossi", vat_number="12345670157"))
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["modules", "enable", "rentals"])
    assert result.exit_code == 0, result.output

    restarted = make_app(empty_db_url, COPYDESK_MODULES=[])
    assert restarted.extensions["copydesk"].enabled("rentals")
    assert "rentals_device" in tables(restarted)
    with restarted.app_context():
        assert db.session.scalar(sa.select(Partner.name)) == "Studio Rossi"


def test_upgrading_a_populated_database_loses_nothing(empty_db_url):
    """Take rentals back to base and up again on a database with data: core rows survive, rentals comes back."""
    from alembic import command

    from core.migrate import alembic_config

    app = make_app(empty_db_url)
    migrate(app)
    with app.app_context():
        app.test_cli_runner().invoke(args=["demo", "load"])
        before = db.session.scalar(sa.select(sa.func.count()).select_from(Partner))
        db.session.remove()  # release the read so the migration can take its locks
        command.downgrade(alembic_config(), "rentals@base")
        assert "rentals_device" not in set(sa.inspect(db.engine).get_table_names())
    migrate(app)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == before > 0
        assert "rentals_device" in set(sa.inspect(db.engine).get_table_names())


def test_db_upgrade_command_reports_what_it_upgraded(empty_db_url):
    app = make_app(empty_db_url)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "core, rentals" in result.output
    states = make_app(empty_db_url).test_cli_runner().invoke(args=["modules", "list"]).output
    assert "rentals" in states and "enabled" in states
