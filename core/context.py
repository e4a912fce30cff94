"""What a module's `setup(ctx)` can contribute, and the per-app registry that keeps it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import click
from flask import Blueprint, Flask, current_app, has_app_context
from flask_babel import lazy_gettext
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionEvents

from core.extension_points import ExtensionPoint, ExtensionRegistry
from core.loader import Manifest, Resolution


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func: Callable
    cron: str  # five-field cron expression, evaluated in UTC
    module: str


@dataclass
class AppRegistry:
    """Everything core knows about the app's modules; kept in `app.extensions["copydesk"]`."""

    resolution: Resolution | None = None
    extensions: ExtensionRegistry = field(default_factory=ExtensionRegistry)
    periodic_jobs: dict[str, PeriodicJob] = field(default_factory=dict)
    demo_loaders: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    session_listeners: dict[str, list[Callable]] = field(default_factory=dict)  # Session event name -> listeners
    admin: Any = None

    def enabled(self, name: str) -> bool:
        status = self.resolution.statuses.get(name) if self.resolution else None
        return bool(status and status.state == "enabled")


class ModuleContext:
    """Handed to a module's `setup(ctx)`; nothing a module contributes is registered at import time."""

    def __init__(self, app: Flask, manifest: Manifest, registry: AppRegistry) -> None:
        self.app = app
        self.manifest = manifest
        self.registry = registry
        self.name = manifest.name
        self._add_module_folders()

    def _add_module_folders(self) -> None:
        templates = self.manifest.path / "templates"
        if templates.is_dir():
            self.app.jinja_loader = ChoiceLoader([self.app.jinja_loader, FileSystemLoader(str(templates))])
        translations = self.manifest.path / "translations"
        if translations.is_dir():
            dirs = self.app.config["BABEL_TRANSLATION_DIRECTORIES"]
            self.app.config["BABEL_TRANSLATION_DIRECTORIES"] = f"{dirs};{translations}"
            # Flask-Babel read that setting once, in init_app: add the folder to the list it searches.
            self.app.extensions["babel"].translation_directories.append(str(translations))

    def add_models(self, models_module: ModuleType) -> None:
        """Check that every model class of the module's models.py names a table with the module's prefix.

        Importing models.py is what puts its tables on `core.db.db.metadata` (for queries, migrations and the boundary
        checks); this call only refuses, at startup, a table without the `<module>_` prefix.
        """
        prefix = f"{self.name}_"
        owned = [
            getattr(obj, "__tablename__", None)
            for obj in vars(models_module).values()
            if isinstance(obj, type) and getattr(obj, "__module__", None) == models_module.__name__
        ]
        wrong = [t for t in owned if t and not t.startswith(prefix)]
        if wrong:
            raise ValueError(f"module {self.name}: tables {wrong} must start with {prefix!r}")

    def add_blueprint(self, blueprint: Blueprint, **options: Any) -> None:
        self.app.register_blueprint(blueprint, **options)

    def add_admin_view(self, view: Any) -> None:
        """A Flask-Admin view (subclass of core.admin.SecuredModelView or SecuredView); menu category = module title."""
        if getattr(view, "category", None) is None:
            view.category = lazy_gettext(self.manifest.title)  # msgid extracted from the manifest (babel.cfg)
        self.registry.admin.add_view(view)

    def add_cli_group(self, group: click.Group) -> None:
        self.app.cli.add_command(group)

    def add_periodic_job(self, func: Callable, cron: str, name: str | None = None) -> None:
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise ValueError(f"module {self.name}: invalid cron expression {cron!r}")
        job_name = name or f"{self.name}.{func.__name__}"
        self.registry.periodic_jobs[job_name] = PeriodicJob(job_name, func, cron, self.name)

    def add_demo_data(self, loader: Callable[[], None]) -> None:
        """A function that loads this module's demo data; must be idempotent."""
        self.registry.demo_loaders.append((self.name, loader))

    def register(self, point: ExtensionPoint[Any], implementation: Any) -> None:
        """Implement an extension point declared in core.extension_points (`BILLABLE_SOURCE`, `DASHBOARD`)."""
        self.registry.extensions.register(point, implementation)

    def add_session_listener(self, event_name: str, listener: Callable) -> None:
        """Listen to a SQLAlchemy Session event (`after_flush`, `do_orm_execute`, ...) in this app only.

        For work after a commit use `core.db.on_commit` instead.
        """
        if not hasattr(SessionEvents, event_name):
            raise ValueError(f"module {self.name}: {event_name!r} is not a SQLAlchemy Session event")
        _dispatch_session_event(event_name)
        self.registry.session_listeners.setdefault(event_name, []).append(listener)


_DISPATCHED: set[str] = set()


def _dispatch_session_event(event_name: str) -> None:
    """Listen to `event_name` on every Session once per process, calling the listeners of the current app's modules.

    SQLAlchemy's Session events are global; an app that did not enable a module must not run its listeners.
    """
    if event_name in _DISPATCHED:
        return

    def dispatch(*args: Any) -> None:
        registry = current_app.extensions.get("copydesk") if has_app_context() else None
        for listener in registry.session_listeners.get(event_name, ()) if registry else ():
            listener(*args)

    event.listen(Session, event_name, dispatch)
    _DISPATCHED.add(event_name)
