"""A PostgreSQL server of the test's own (Debian's binaries, a throw-away cluster on a free port) that it can stop."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.smtp_server import free_port

# The server major version CI runs: pg_dump and pg_restore must match it.
PREFERRED_VERSION = "15"


def postgres_bin_dir() -> Path | None:
    """Debian's /usr/lib/postgresql/<version>/bin, the preferred version first; None when not installed."""
    preferred = Path(f"/usr/lib/postgresql/{PREFERRED_VERSION}/bin")
    if (preferred / "pg_ctl").exists():
        return preferred
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def require_postgres_binaries() -> Path:
    """The binaries' folder; skip the test without them (fail with REQUIRE_SERVICES=1)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    return bin_dir


class PostgresServer:
    """initdb into a temporary folder, then `start()` / `stop()` a server on 127.0.0.1 with trust authentication.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` account and every command runs
    through `runuser`. The database user is the cluster's owner.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.owner = self.run_as or pwd.getpwuid(os.geteuid()).pw_name
        self.root = Path(tempfile.mkdtemp(prefix="copydesk-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self.run_as:
            shutil.chown(self.root, user=self.run_as)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.owner, "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.owner}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        """Fast shutdown, as an operator or a crashing host would: open transactions are rolled back."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data), check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres_server():
    """A started PostgreSQL server of this test's own; removed afterwards."""
    server = PostgresServer(require_postgres_binaries())
    try:
        server.start()
        yield server
    finally:
        server.destroy()
