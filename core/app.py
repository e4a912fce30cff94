"""The app factory: configuration, extensions, core features, then the enabled modules."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from core import admin, audit, cli, errors, health, i18n, log_filters  # noqa: F401  (audit registers listeners)
from core.config import ROOT, load_config
from core.context import AppRegistry
from core.db import db
from core.extension_points import DASHBOARD
from core.extensions import csrf, init_limiter, login_manager, mail, migrate
from core.migrate import CORE_MIGRATIONS, alembic_config
from core.module_state import load_modules


def create_app(config: dict | None = None) -> Flask:
    """Build the app. Modules are set up here, so enabling one takes effect at the next start."""
    app = Flask(
        "core",
        root_path=str(ROOT / "core"),
        instance_path=load_config(config)["INSTANCE_DIR"],
        template_folder="templates",
        static_folder="static",
    )
    app.config.update(load_config(config))

    db.init_app(app)
    migrate.init_app(app, db, directory=str(CORE_MIGRATIONS), command="alembic")
    csrf.init_app(app)
    login_manager.init_app(app)
    mail.init_app(app)
    init_limiter(app)
    i18n.init_app(app)

    registry = AppRegistry()
    app.extensions["copydesk"] = registry
    registry.admin = admin.init_admin(app)
    registry.extensions.register(DASHBOARD, admin.CoreDashboard())

    from core import api, auth, jobs, outbox, partners, portal, security

    for feature in (health, errors, cli, auth, portal, partners, jobs, outbox, api, security):
        feature.init_app(app)

    load_modules(app, registry)
    log_filters.install(app)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    return app


@migrate.configure
def _configure_alembic(config):
    """`flask alembic ...` sees the same version locations as `flask db ...`."""
    ours = alembic_config()
    for key in ("version_locations", "path_separator"):
        config.set_main_option(key, ours.get_main_option(key))
    return config
