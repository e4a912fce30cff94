"""A CUPS scheduler of the tests' own (Debian's cupsd on a free 127.0.0.1 port, its own config, spool and logs): a
secure queue on our copydesk-hold backend and a cups-pdf queue, with the documented PageLogFormat."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.smtp_server import free_port

CUPSD = "/usr/sbin/cupsd"
CUPS_SERVERBIN = Path("/usr/lib/cups")
CUPS_PDF_BACKEND = CUPS_SERVERBIN / "backend" / "cups-pdf"
CUPS_PDF_PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_noopt.ppd")
# cups-pdf reads Debian's /etc/cups/cups-pdf.conf (compiled in): a job of a user this machine does not know lands
# here, named after its title; the fixture removes what its own jobs left.
CUPS_PDF_ANONYMOUS = Path("/var/spool/cups-pdf/ANONYMOUS")
SECURE_QUEUE = "copydesk-secure"
PDF_QUEUE = "office-pdf"
TITLE_PREFIX = "copydesk-test-"
CLIENTS = ("lp", "lpstat", "lpadmin", "cancel", "cupsenable")
_REQUEST_ID = re.compile(r"request id is (\S+)-(\d+)")


def require_cupsd() -> None:
    """Skip the test when CUPS or cups-pdf are missing (fail with REQUIRE_SERVICES=1)."""
    missing = [str(path) for path in (Path(CUPSD), CUPS_PDF_BACKEND, CUPS_PDF_PPD) if not path.exists()]
    missing += [tool for tool in CLIENTS if shutil.which(tool) is None]
    if missing:
        message = (
            f"CUPS is not installed (missing {', '.join(missing)}: apt-get install cups cups-pdf cups-client cups-bsd)"
        )
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


class CupsServer:
    """cupsd -f with ServerRoot, ServerBin (a mirror of Debian's with copydesk-hold installed into its backend
    folder by `install_cups_backend`), spool and logs in a temporary folder."""

    secure_queue = SECURE_QUEUE
    pdf_queue = PDF_QUEUE

    def __init__(self) -> None:
        from modules.device_accounting.cli import install_cups_backend
        from modules.device_accounting.page_log import PAGE_LOG_FORMAT

        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="copydesk-cups-"))
        self.root.chmod(0o755)  # the filters run as lp and read the spool below
        self.server_root = self.root / "etc"
        self.bin = self.root / "lib"
        self.spool = self.root / "spool"
        self.logs = self.root / "log"
        self.state = self.root / "run"
        for folder in (self.server_root, self.bin / "backend", self.spool / "tmp", self.logs, self.state):
            folder.mkdir(parents=True)
        (self.root / "cache").mkdir()
        for entry in CUPS_SERVERBIN.iterdir():
            if entry.name != "backend":
                (self.bin / entry.name).symlink_to(entry)
        for backend in (CUPS_SERVERBIN / "backend").iterdir():
            (self.bin / "backend" / backend.name).symlink_to(backend)
        written = install_cups_backend(self.bin / "backend", self.root / "ppd")
        self.backend, self.ppd = written
        self.config = self.root / "copydesk" / "print-server.conf"
        self.config.parent.mkdir()
        self.page_log = self.logs / "page_log"
        self.error_log = self.logs / "error_log"
        self.env = {**os.environ, "CUPS_SERVER": f"127.0.0.1:{self.port}"}
        self.env.pop("PRINTER", None)
        self.env.pop("LPDEST", None)
        self._process: subprocess.Popen | None = None
        self._files = self.server_root / "cups-files.conf"
        self._conf = self.server_root / "cupsd.conf"
        self._files.write_text(
            f"""ServerRoot {self.server_root}
ServerBin {self.bin}
DataDir /usr/share/cups
RequestRoot {self.spool}
TempDir {self.spool / "tmp"}
CacheDir {self.root / "cache"}
StateDir {self.state}
Printcap {self.state / "printcap"}
AccessLog {self.logs / "access_log"}
ErrorLog {self.error_log}
PageLog {self.page_log}
User lp
Group lp
SystemGroup root
FileDevice No
"""
        )
        # An open policy on a loopback-only server: lpadmin needs no password. A job the backend asked to retry
        # (exit 6) goes again soon (cupsd looks at held jobs about every 10 s) and, as docs/print-server.md says,
        # for ever: JobRetryLimit 0 (the default 5 would abort it).
        self._conf.write_text(
            f"""LogLevel info
Listen 127.0.0.1:{self.port}
Browsing Off
WebInterface No
DefaultAuthType None
JobRetryInterval 1
JobRetryLimit 0
PreserveJobHistory Yes
PageLogFormat {PAGE_LOG_FORMAT}
<Location />
  Order allow,deny
  Allow 127.0.0.1
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""
        )

    # --- the scheduler ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        with (self.logs / "cupsd.out").open("ab") as out:
            self._process = subprocess.Popen(
                [CUPSD, "-f", "-c", str(self._conf), "-s", str(self._files)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"cupsd exited with {self._process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cupsd did not listen on port {self.port}: {self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        texts = []
        for name in ("cupsd.out", "error_log"):
            path = self.logs / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-size:])
        return "\n".join(texts)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def add_queues(self) -> None:
        """The secure queue, as docs/print-server.md says to add it, and a cups-pdf queue."""
        device_uri = f"copydesk-hold:{self.config}"
        self.run("lpadmin", "-p", SECURE_QUEUE, "-E", "-v", device_uri, "-P", str(self.ppd), "-D", "Copydesk secure")
        self.run("lpadmin", "-p", PDF_QUEUE, "-E", "-v", "cups-pdf:/", "-P", str(CUPS_PDF_PPD))

    def configure(self, url: str, token: str, **extra: str) -> None:
        """Write the backend's config file (mode 0600, as installed on a print server)."""
        lines = [
            "[copydesk]",
            f"url = {url}",
            f"token = {token}",
            *(f"{key} = {value}" for key, value in extra.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)

    # --- jobs ------------------------------------------------------------------------------------------------------

    def lp(
        self, queue: str, path: Path, user: str, *, title: str | None = None, copies: int = 1, **options: str
    ) -> int:
        """Print `path` to `queue` as `user`; the CUPS job id."""
        command = ["lp", "-d", queue, "-U", user, "-n", str(copies)]
        if title is not None:
            command += ["-t", title]
        for name, value in options.items():
            command += ["-o", f"{name.replace('_', '-')}={value}"]
        result = self.run(*command, str(path))
        match = _REQUEST_ID.search(result.stdout)
        if match is None:
            raise RuntimeError(f"lp printed no request id: {result.stdout}{result.stderr}")
        return int(match.group(2))

    def jobs(self, which: str = "not-completed") -> dict[int, str]:
        """{job id: the job's alert line (job-hold-until-specified, printer-stopped, ...)} of `lpstat -W which -l`."""
        out = self.run("lpstat", "-W", which, "-l", "-o").stdout
        found: dict[int, str] = {}
        current = None
        for line in out.splitlines():
            match = re.match(r"(\S+)-(\d+)\s", line)
            if match:
                current = int(match.group(2))
                found[current] = ""
            elif current is not None and "Alerts:" in line:
                found[current] = line.split("Alerts:", 1)[1].strip()
        return found

    def wait_until(self, predicate, timeout: float = 30.0, what: str = "the condition"):
        """Poll `predicate` until it returns something true; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; lpstat: {self.jobs()}\n{self.log_tail()}")
            time.sleep(0.2)

    def completed(self, job_id: int) -> bool:
        return job_id in self.jobs("completed")

    def page_log_lines(self) -> list[str]:
        return self.page_log.read_text().splitlines() if self.page_log.exists() else []

    def cancel_all(self) -> None:
        """Cancel and purge every job; enable the queues again (a backend's exit 4 stops its queue)."""
        self.run("cancel", "-a", "-x", check=False)
        self.run("cupsenable", SECURE_QUEUE, PDF_QUEUE, check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        for leftover in CUPS_PDF_ANONYMOUS.glob(f"{TITLE_PREFIX}*"):
            leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def _cups_server_process():
    require_cupsd()
    server = CupsServer()
    try:
        server.start()
        server.add_queues()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def cups_server(_cups_server_process):
    """The session's running cupsd with its two queues enabled and no job left from another test."""
    server = _cups_server_process
    if not server.running:
        server.start()
    yield server
    server.cancel_all()
