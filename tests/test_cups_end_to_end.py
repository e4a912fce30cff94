"""A real CUPS (tests/cups_server.py) in front of a running Copydesk: `lp` to the secure queue holds the job, a
simulated MFP releases it through the collector and it is charged once; the cups-pdf queue's page log is imported;
the backend's exit codes keep every job in CUPS when Copydesk refuses it or cannot be reached."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from core.db import db
from modules.device_accounting import page_log, print_servers
from modules.device_accounting.cli import BACKEND
from modules.device_accounting.models import HeldDocument, HeldJob, PrintServer, Quota, Transaction
from modules.device_collector.simulator import SimulatedDevice
from modules.device_collector.tests.collector_support import enrolled_office, run_async, running_collector
from tests.cups_server import PDF_QUEUE, SECURE_QUEUE, TITLE_PREFIX
from tests.smtp_server import free_port

# Three A4 pages of PostScript: the secure queue's PPD has CUPS's own filters make the PDF the backend sends.
POSTSCRIPT = (
    "%!PS-Adobe-3.0\n%%Pages: 3\n%%EndComments\n"
    + "".join(
        f"%%Page: {n} {n}\n/Helvetica findfont 24 scalefont setfont 72 720 moveto (Page {n}) show showpage\n"
        for n in (1, 2, 3)
    )
    + "%%EOF\n"
)


@pytest.fixture(scope="module")
def copydesk_url(_migrated_app):
    """The app served over HTTP on a free port, as the backend reaches it."""
    server = make_server("127.0.0.1", 0, _migrated_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "offerta.ps"
    path.write_text(POSTSCRIPT)
    return path


@pytest.fixture
def office(app):
    """collector_support's office (an enrolled colour MFP, mrossi with a card and a 20.00 quota) and its print
    server cups1, whose page log is the test cupsd's; committed."""
    place = enrolled_office(app)
    with app.app_context():
        server, token = print_servers.create_print_server(place.customer_id, "cups1")
        db.session.commit()
        place.server_id, place.token = server.id, token
    return place


def _held_jobs(app) -> list[HeldJob]:
    with app.app_context():
        jobs = list(db.session.scalars(sa.select(HeldJob).order_by(HeldJob.id)))
        db.session.expunge_all()
        return jobs


def _transactions(app) -> list[tuple[int, int, int, Decimal]]:
    with app.app_context():
        return [
            (tx.user_id, tx.sides_bw, tx.sides_color, tx.cost)
            for tx in db.session.scalars(sa.select(Transaction).order_by(Transaction.id))
        ]


def test_a_postscript_job_is_held_then_released_at_a_device_and_charged_once(
    app, copydesk_url, cups_server, office, document
):
    cups_server.configure(copydesk_url, office.token)
    title = f"{TITLE_PREFIX}Offerta Rossi"

    job_id = cups_server.lp(SECURE_QUEUE, document, "mrossi", title=title, copies=2, sides="two-sided-long-edge")
    cups_server.wait_until(lambda: cups_server.completed(job_id), what=f"job {job_id} to leave the secure queue")

    (held,) = _held_jobs(app)
    assert (held.user_id, held.pages, held.copies, held.duplex, held.color) == (office.user_id, 3, 2, True, False)
    assert (held.title, held.state, held.paper_size) == (title, "held", "A4")
    with running_collector(app) as collector:
        device = SimulatedDevice(
            office.serial, collector.host, collector.port, collector.ca_pem, office.cert_pem, office.key_pem
        )

        async def at_the_panel():
            await device.hello()
            released = await device.release_held_jobs({"card": office.card})
            again = await device.flush()
            await device.close()
            return released, again

        (released,), again = run_async(at_the_panel())

    assert released.refused is None and released.document.startswith(b"%PDF")
    assert released.result["status"] == "stored"
    assert again.acknowledged == 0
    assert _transactions(app) == [(office.user_id, 6, 0, Decimal("0.0600"))]
    (done,) = _held_jobs(app)
    assert done.state == "released" and done.released_device_id == office.device_id
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(HeldDocument)) == 0
        quota = db.session.scalars(sa.select(Quota).where(Quota.user_id == office.user_id)).one()
        from modules.device_accounting.tests import core_support as s

        assert s.balance_of(quota).balance == Decimal("19.9400")


def test_a_cups_pdf_job_is_charged_from_the_page_log(app, cups_server, office, document, monkeypatch):
    monkeypatch.setitem(app.config, "COPYDESK_PAGE_LOG_DIRS", [str(Path(cups_server.page_log).parent)])
    with app.app_context():
        server = db.session.get(PrintServer, office.server_id)
        server.page_log_path = str(cups_server.page_log)
        print_servers.map_printer(server, PDF_QUEUE, office.device_id)
        db.session.commit()
        # The scheduled import reads what the session's cupsd logged before (other tests' jobs): then only this job
        # is new.
        page_log.import_configured_logs()
    before = len(_transactions(app))
    job_id = cups_server.lp(PDF_QUEUE, document, "mrossi", title=f"{TITLE_PREFIX}Listino")
    marker = f"{PDF_QUEUE} {job_id} mrossi "
    cups_server.wait_until(
        lambda: any(line.startswith(marker) for line in cups_server.page_log_lines()),
        what=f"the page log line of job {job_id}",
    )
    runner = app.test_cli_runner()

    first = runner.invoke(args=["device-accounting", "import-page-log", str(cups_server.page_log)])
    again = runner.invoke(args=["device-accounting", "import-page-log", str(cups_server.page_log), "--from-start"])

    assert "cups1: 1 imported, 0 read before, 0 held jobs (charged at release), 0 skipped" in first.output
    assert "cups1: 0 imported" in again.output, again.output
    # cups-pdf's PPD prints in colour: three colour sides at 0.05.
    assert _transactions(app)[before:] == [(office.user_id, 0, 3, Decimal("0.1500"))]


def test_a_job_for_an_unknown_user_stays_held_in_cups(app, copydesk_url, cups_server, office, document):
    cups_server.configure(copydesk_url, office.token)

    job_id = cups_server.lp(SECURE_QUEUE, document, "nessuno", title=f"{TITLE_PREFIX}Ignoto")

    cups_server.wait_until(
        lambda: cups_server.jobs().get(job_id) == "job-hold-until-specified", what=f"job {job_id} to be held"
    )
    assert _held_jobs(app) == []


def test_while_copydesk_is_down_the_job_waits_in_cups_and_is_sent_once_it_is_back(
    app, copydesk_url, cups_server, office, document
):
    cups_server.configure(f"http://127.0.0.1:{free_port()}", office.token)

    job_id = cups_server.lp(SECURE_QUEUE, document, "mrossi", title=f"{TITLE_PREFIX}Attesa")
    cups_server.wait_until(
        lambda: cups_server.jobs().get(job_id) == "resources-are-not-ready", what=f"job {job_id} to wait for a retry"
    )
    assert not cups_server.completed(job_id)
    assert _held_jobs(app) == []
    cups_server.configure(copydesk_url, office.token)
    cups_server.wait_until(lambda: cups_server.completed(job_id), what=f"job {job_id} to be sent after the retry")

    (held,) = _held_jobs(app)
    assert held.user_id == office.user_id and held.pages == 3


# --- the backend alone: its exit codes ------------------------------------------------------------------------------


def _backend(config: Path, document: Path, user: str, job_id: int = 41) -> subprocess.CompletedProcess:
    """Run copydesk-hold as CUPS does: DEVICE_URI naming the config, the job's attributes, the PDF on stdin."""
    environ = {**os.environ, "DEVICE_URI": f"copydesk-hold:{config}", "FINAL_CONTENT_TYPE": "application/pdf"}
    environ.pop("PPD", None)
    options = f"media=A4 sides=one-sided print-color-mode=color job-uuid=urn:uuid:00000000-0000-4000-8000-{job_id:012d}"
    with document.open("rb") as stdin:
        return subprocess.run(
            ["/usr/bin/python3", str(BACKEND), str(job_id), user, "Offerta", "1", options],
            stdin=stdin,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def pdf_file(tmp_path) -> Path:
    from modules.device_accounting.tests.held_support import pdf

    path = tmp_path / "offerta.pdf"
    path.write_bytes(pdf(2))
    return path


def _config(tmp_path: Path, url: str, token: str) -> Path:
    path = tmp_path / "print-server.conf"
    path.write_text(f"[copydesk]\nurl = {url}\ntoken = {token}\ntimeout = 10\n")
    return path


def test_the_backend_exit_codes_tell_cups_what_to_do(app, copydesk_url, office, pdf_file, tmp_path):
    good = _config(tmp_path, copydesk_url, office.token)

    stored = _backend(good, pdf_file, "mrossi")
    repeated = _backend(good, pdf_file, "mrossi")
    unknown = _backend(good, pdf_file, "nessuno", job_id=42)
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    not_a_pdf = _backend(good, empty, "mrossi", job_id=43)
    bad_token = _backend(_config(tmp_path, copydesk_url, "not-the-token"), pdf_file, "mrossi", job_id=44)
    down = _backend(_config(tmp_path, f"http://127.0.0.1:{free_port()}", office.token), pdf_file, "mrossi", 45)

    assert (stored.returncode, repeated.returncode) == (0, 0), stored.stderr + repeated.stderr
    assert unknown.returncode == 3 and "user" in unknown.stderr
    assert not_a_pdf.returncode == 3 and "document" in not_a_pdf.stderr
    assert bad_token.returncode == 4 and "not-the-token" not in bad_token.stderr
    assert down.returncode == 6 and "cannot be reached" in down.stderr
    (held,) = _held_jobs(app)
    assert (held.pages, held.color, held.title) == (2, True, "Offerta")


def test_the_install_command_puts_a_root_only_backend_and_the_ppd_in_place(app, tmp_path):
    result = app.test_cli_runner().invoke(
        args=["device-accounting", "install-cups-backend", "--dir", str(tmp_path / "b"), "--ppd-dir", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    backend = tmp_path / "b" / "copydesk-hold"
    assert stat.S_IMODE(backend.stat().st_mode) == 0o700
    assert backend.read_bytes() == BACKEND.read_bytes()
    assert (tmp_path / "copydesk-hold.ppd").exists()
    assert f"-P {tmp_path / 'copydesk-hold.ppd'}" in result.output
