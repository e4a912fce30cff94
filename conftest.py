"""Shared test fixtures: apps on SQLite and, when configured, on real PostgreSQL; real Redis when configured.

Environment:
- TEST_DATABASE_URL: a PostgreSQL database the tests may wipe; every `app` test then runs on it as well as SQLite.
- TEST_REDIS_URL: a Redis database the tests may flush (use db 15).
- REQUIRE_SERVICES=1: a missing PostgreSQL, Redis or browser fails the run instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

pytest_plugins = [
    "tests.smtp_server",
    "tests.redis_server",
    "tests.browser_support",
    "tests.ldap_server",
    "tests.cups_server",
    "tests.imap_server",
    "tests.snmp_server",
]

os.environ.setdefault("COPYDESK_INSTANCE", str(Path(__file__).parent / "instance" / "test"))

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")

# Tables whose rows survive between tests: the schema's own bookkeeping.
KEEP_TABLES = {"alembic_version", "core_module"}


def pytest_configure(config):
    if REQUIRE_SERVICES:
        missing = [
            name
            for name, value in (("TEST_DATABASE_URL", TEST_DATABASE_URL), ("TEST_REDIS_URL", TEST_REDIS_URL))
            if not value
        ]
        if missing:
            raise pytest.UsageError(f"REQUIRE_SERVICES=1 but {', '.join(missing)} is not set")


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]


def reset_postgres(url: str) -> None:
    """Drop everything in the test database's public schema."""
    from core.config import load_config

    engine = sa.create_engine(load_config({"DATABASE_URL": url})["SQLALCHEMY_DATABASE_URI"])
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def empty_postgres(url: str) -> None:
    """Create the PostgreSQL database of `url` if the server lacks it, then drop everything in its public schema."""
    from core.config import load_config

    target = sa.engine.make_url(load_config({"DATABASE_URL": url})["SQLALCHEMY_DATABASE_URI"])
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}):
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    engine.dispose()
    reset_postgres(url)


def database_url(backend: str, tmp_path: Path, name: str | None = None) -> str:
    """An emptied database for a session app: TEST_DATABASE_URL itself, or a database of its own beside it (`name`).

    Session apps that live side by side must not share a PostgreSQL database: one would drop the other's tables.
    """
    if backend == "postgresql":
        if name:
            return postgres_database(name)
        reset_postgres(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    filename = f"{name or 'test'}.sqlite"
    return f"sqlite:///{tmp_path / filename}"


def make_app(db_url: str, **overrides):
    """A fresh app on `db_url` with test settings; `overrides` go into its config."""
    from core import create_app

    config = {
        "DATABASE_URL": db_url,
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "REDIS_URL": None,
        "MAIL_SERVER": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": None,
    }
    config.update(overrides)
    return create_app(config)


def migrate(app) -> None:
    """Bring the app's database to the head of core and its enabled modules, as `flask db upgrade` does."""
    from core.migrate import upgrade_enabled
    from core.module_state import record_states, resolve_for_app

    with app.app_context():
        upgrade_enabled(app.extensions["copydesk"].resolution)
        record_states(resolve_for_app(app), app.config["COPYDESK_MODULES"])


def wipe_rows(app) -> None:
    from core.db import db

    with app.app_context():
        db.session.remove()
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in KEEP_TABLES]
        existing = set(sa.inspect(db.engine).get_table_names())
        with db.engine.begin() as conn:
            for table in tables:
                if table.name in existing:
                    conn.execute(table.delete())


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    app = make_app(database_url(request.param, tmp_path_factory.mktemp(request.param)))
    # An app built before its tables exist must be rebuilt after migrating, as a real restart would.
    migrate(app)
    app = make_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()


@pytest.fixture
def app(_migrated_app):
    """The full app on a migrated database (SQLite, then PostgreSQL when configured), emptied after each test."""
    yield _migrated_app
    wipe_rows(_migrated_app)


@pytest.fixture
def db_session(app):
    from core.db import db

    with app.app_context():
        yield db.session
        db.session.remove()


def postgres_database(suffix: str) -> str:
    """An emptied PostgreSQL database `<test database>_<suffix>` beside TEST_DATABASE_URL, created if missing."""
    from core.config import load_config

    base = sa.engine.make_url(load_config({"DATABASE_URL": TEST_DATABASE_URL})["SQLALCHEMY_DATABASE_URI"])
    url = base.set(database=f"{base.database}_{suffix}").render_as_string(hide_password=False)
    empty_postgres(url)
    return url


@pytest.fixture(params=backends())
def empty_db_url(request, tmp_path):
    """An empty database nobody else uses: a SQLite file, then a scratch PostgreSQL database when configured."""
    if request.param == "postgresql":
        yield postgres_database("scratch")
    else:
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis_url():
    """A real Redis (db 15), flushed before and after; skipped when absent unless REQUIRE_SERVICES=1."""
    if not TEST_REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("TEST_REDIS_URL is not set and REQUIRE_SERVICES=1")
        pytest.skip("TEST_REDIS_URL is not set: no real Redis to test against")
    import redis

    conn = redis.Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    yield TEST_REDIS_URL
    conn.flushdb()
