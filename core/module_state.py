"""Module state kept in the database, and the step of create_app that sets the enabled modules up."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from core import signals
from core.context import AppRegistry, ModuleContext
from core.db import db
from core.licensing import entitlement_checker
from core.loader import Resolution, discover, import_entry, resolve
from core.models import ModuleState


def requested_states() -> dict[str, bool]:
    """What the database says each module should be; empty on a database not migrated yet."""
    if not sa.inspect(db.engine).has_table(ModuleState.__tablename__):
        return {}
    return {row.name: row.requested for row in db.session.scalars(sa.select(ModuleState))}


def resolve_for_app(app: Flask) -> Resolution:
    manifests = discover(app.config["COPYDESK_MODULE_PACKAGES"])
    with app.app_context():
        requested = requested_states()
        db.session.remove()
    default = app.config["COPYDESK_MODULES"]
    return resolve(
        manifests,
        requested,
        None if default is None else set(default),
        entitlement_checker(app, manifests, requested),
    )


def load_modules(app: Flask, registry: AppRegistry) -> None:
    """Set up every enabled module, dependencies first (loader steps 1 to 7 of the architecture)."""
    registry.resolution = resolve_for_app(app)
    for manifest in registry.resolution.enabled():
        import_entry(manifest).setup(ModuleContext(app, manifest, registry))
    signals.modules_loaded.send(app, resolution=registry.resolution)


def record_states(resolution: Resolution, default_requested: list[str] | None) -> None:
    """Write down the configured request of every module the database does not mention yet (a new database).

    auto_install bridges get no row: their dependencies decide, unless someone disables them explicitly.
    """
    known = {row.name: row for row in db.session.scalars(sa.select(ModuleState))}
    for name, status in resolution.statuses.items():
        row = known.get(name)
        enabled = status.state == "enabled"
        if row is None and not status.manifest.auto_install:
            requested = default_requested is None or name in default_requested
            db.session.add(
                ModuleState(
                    name=name,
                    requested=requested,
                    installed_version=status.manifest.version if enabled else None,
                )
            )
        elif row is not None and enabled:
            row.installed_version = status.manifest.version
    db.session.commit()


def set_requested(names: list[str], requested: bool) -> None:
    for name in names:
        row = db.session.get(ModuleState, name) or ModuleState(name=name)
        row.requested = requested
        db.session.add(row)
    db.session.commit()
