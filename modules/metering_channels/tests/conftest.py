"""The meter channels tests' app: core, rentals, metering and metering_channels, on SQLite and PostgreSQL (its own
database, suffix "channels")."""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate

MODULES = ["rentals", "metering", "metering_channels"]


def channels_app(db_url: str, **overrides):
    return make_app(db_url, COPYDESK_MODULES=MODULES, **overrides)


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    """Overrides the root fixture: the migrated app with the channels module and what it depends on, nothing else."""
    app = channels_app(database_url(request.param, tmp_path_factory.mktemp(request.param), name="channels"))
    migrate(app)
    app = channels_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()


@pytest.fixture
def mailbox_of(app, monkeypatch):
    """A Mailbox (committed) on the tests' dovecot, trusting its CA: `mailbox_of(imap_server, security="starttls")`."""
    from core.db import db
    from modules.metering_channels.imap_poll import set_password
    from modules.metering_channels.models import Mailbox

    def make(server, security: str = "ssl", password: str | None = None, **fields):
        monkeypatch.setitem(app.config, "COPYDESK_IMAP_CA_FILE", str(server.ca_file))
        port = server.port if security == "ssl" else server.starttls_port
        mailbox = Mailbox(
            name=fields.pop("name", "Counters"),
            host=server.host,
            port=port,
            security=security,
            username=server.user,
            **fields,
        )
        set_password(mailbox, password or server.password)
        db.session.add(mailbox)
        db.session.commit()
        return mailbox

    return make
