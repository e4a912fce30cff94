"""Backups of the whole database: SQLite's online backup API, PostgreSQL's pg_dump -Fc / pg_restore."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

SQLITE_HEADER = b"SQLite format 3\x00"
PG_DUMP_HEADER = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and what to do."""


def _is_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: sa.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _libpq_env(url: sa.URL) -> dict[str, str]:
    """Connection settings for pg_dump/pg_restore as libpq variables: the password stays out of the process list."""
    settings = {
        "PGHOST": url.host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
    }
    return {**os.environ, **{key: value for key, value in settings.items() if value}}


def postgres_tool(name: str, engine: sa.Engine) -> str:
    """pg_dump or pg_restore of the server's major version (Debian installs each under /usr/lib/postgresql/<major>)."""
    with engine.connect() as conn:
        major = int(conn.scalar(sa.text("SHOW server_version_num"))) // 10000
    matching = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    if matching.exists():
        return str(matching)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install the PostgreSQL {major} client (postgresql-client-{major})")
    return found


def _run(command: list[str], url: sa.URL) -> None:
    result = subprocess.run(command, env=_libpq_env(url), capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")


def create_backup(engine: sa.Engine, target: Path) -> Path:
    """Write a consistent copy of the database to `target` while the application keeps running."""
    target.parent.mkdir(parents=True, exist_ok=True)
    url = engine.url
    if _is_sqlite(url):
        # The online backup API copies page by page under SQLite's own locking: writers may go on meanwhile.
        source = sqlite3.connect(_sqlite_path(url))
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()
    else:
        # -Fc: compressed, restorable table by table; one snapshot, so consistent while writers go on.
        _run([postgres_tool("pg_dump", engine), "-Fc", "--no-owner", "--no-acl", "-f", str(target)], url)
    return target


def _table_names(engine: sa.Engine) -> list[str]:
    return sa.inspect(engine).get_table_names()


def restore_backup(engine: sa.Engine, source: Path) -> None:
    """Restore `source` into the database of `engine`, which must be empty (no tables)."""
    if not source.is_file():
        raise BackupError(f"there is no backup file {source}")
    header = source.read_bytes()[: len(SQLITE_HEADER)]
    url = engine.url
    expected, kind = (SQLITE_HEADER, "SQLite") if _is_sqlite(url) else (PG_DUMP_HEADER, "PostgreSQL (pg_dump -Fc)")
    if not header.startswith(expected):
        raise BackupError(f"{source} is not a {kind} backup, which this database needs")
    existing = _table_names(engine)
    if existing:
        raise BackupError(
            f"the database is not empty ({len(existing)} tables): restore into a new, empty database "
            "and point DATABASE_URL at it"
        )
    engine.dispose()
    if _is_sqlite(url):
        backup = sqlite3.connect(source)
        database = sqlite3.connect(_sqlite_path(url))
        try:
            with database:
                backup.backup(database)
        finally:
            database.close()
            backup.close()
    else:
        command = [postgres_tool("pg_restore", engine), "--no-owner", "--no-acl", "--single-transaction"]
        _run([*command, "--exit-on-error", "-d", url.database, str(source)], url)
