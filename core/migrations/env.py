"""Alembic environment: one branch per module, run against the app's own engine."""

from alembic import context
from flask import current_app

from core.db import db
from core.migrate import table_owner

config = context.config
only_module = config.attributes.get("module")  # set by `flask db revision MODULE`


def include_name(name, type_, parent_names):
    if type_ == "table" and only_module:
        return table_owner(name) == only_module
    return True


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table" and only_module:
        return table_owner(name) == only_module
    return True


def run_migrations_online() -> None:
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_name=include_name,
            include_object=include_object,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
current_app.logger.debug("running migrations")
run_migrations_online()
