"""CUPS page log import: lines parsed as CUPS 2.4 writes them, each job charged once at its queue's device, a garbled
line reported with its number and skipped, rotation continued, unknown queues and users reported."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import current_app

from core.db import db
from core.validation import ValidationError
from modules.device_accounting import held_jobs, page_log, print_servers
from modules.device_accounting.models import PageLogJob, Transaction
from modules.device_accounting.page_log import CUPSD_CONF_LINE, PAGE_LOG_SEQ_BASE, import_page_log, parse_line
from modules.device_accounting.print_servers import map_printer, map_user
from modules.device_accounting.tests import core_support as s
from modules.device_accounting.tests import held_support as h

ROOT = Path(__file__).resolve().parents[3]
QUEUE = "office-pdf"


def line(job: int = 1, user: str = "mrossi", *, pages: int = 3, queue: str = QUEUE, **fields: str) -> str:
    """A page_log line as CUPS 2.4 writes it with the documented PageLogFormat."""
    values = {
        "time": "02/Mar/2026:12:00:00 +0100",
        "sides": "one-sided",
        "media": "iso_a4_210x297mm",
        "color": "monochrome",
        "uuid": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_DNS, f'{queue}{job}')}",
        "title": "Offerta 2026.pdf",
        **fields,
    }
    return (
        f"{queue} {job} {user} [{values['time']}] total {pages} {values['sides']} {values['media']} "
        f"{values['color']} {values['uuid']} {values['title']}\n"
    )


@pytest.fixture
def office(db_session):
    """Studio Bianchi's print server cups1 with its queue office-pdf at device KY1; mrossi has a 20.00 quota."""
    place = h.office()
    map_printer(place.server, QUEUE, place.device.id)
    place.quota = s.quota(place.mario, "20.00")
    db.session.commit()
    return place


def _charged() -> list[tuple[int, int, int, str, bool, Decimal]]:
    return [
        (tx.user_id, tx.sides_bw, tx.sides_color, tx.paper_size, tx.duplex, tx.cost)
        for tx in db.session.scalars(sa.select(Transaction).order_by(Transaction.id))
    ]


def test_a_line_as_cups_writes_it_is_read():
    parsed = parse_line(
        "office-pdf 12 mrossi [01/Dec/2026:21:30:17 +0100] total 6 two-sided-long-edge A3 color "
        "urn:uuid:fbe9d5fd-010b-31ed-5884-56ffb27ec009 Quarterly report (final).pdf\n"
    )
    assert (parsed.queue, parsed.cups_job_id, parsed.user, parsed.pages) == ("office-pdf", 12, "mrossi", 6)
    assert parsed.job_time == dt.datetime(2026, 12, 1, 20, 30, 17, tzinfo=dt.UTC)
    assert (parsed.duplex, parsed.paper_size, parsed.color) == (True, "A3", True)
    assert parsed.title == "Quarterly report (final).pdf"
    assert parsed.job_uuid == "urn:uuid:fbe9d5fd-010b-31ed-5884-56ffb27ec009"
    bare = parse_line("pdf 5 root [01/Dec/2026:21:30:30 +0000] total 3 - - monochrome - -")
    assert (bare.duplex, bare.paper_size, bare.color, bare.job_uuid, bare.title) == (False, "A4", False, None, None)


@pytest.mark.parametrize(
    "text",
    [
        "office-pdf 12 mrossi total 6",
        "office-pdf 12 mrossi [01/Dec/2026:21:30:17 +0100] 1 2 - - - - x",
        "office-pdf 12 mrossi [31/Feb/2026:21:30:17 +0100] total 6 - - - - x",
        "office-pdf 12 mrossi [01/Dez/2026:21:30:17 +0100] total 6 - - - - x",
        "office-pdf x mrossi [01/Dec/2026:21:30:17 +0100] total 6 - - - - x",
    ],
)
def test_a_line_not_in_the_documented_format_is_refused(text):
    with pytest.raises(page_log.PageLogLineError):
        parse_line(text)


def test_each_job_is_charged_once_and_a_garbled_line_is_reported_with_its_number(office, tmp_path):
    log_file = tmp_path / "page_log"
    log_file.write_text(
        line(1, pages=3)
        + "office-pdf 2 mrossi [02/Mar/2026:12:05:00 +0100] tot@l ### garbage\n"
        + line(3, pages=4, color="color", sides="two-sided-long-edge", time="02/Mar/2026:12:10:00 +0100")
    )

    first = import_page_log(office.server, log_file)
    db.session.commit()
    again = import_page_log(office.server, log_file, from_start=True)
    db.session.commit()

    assert (first.imported, first.repeated, [number for number, _ in first.errors]) == (2, 0, [2])
    assert "format" in first.errors[0][1]
    assert _charged() == [
        (office.mario.id, 3, 0, "A4", False, Decimal("0.0300")),
        (office.mario.id, 0, 4, "A4", True, Decimal("0.2000")),
    ]
    assert s.balance_of(office.quota).balance == Decimal("19.7700")
    assert (again.imported, again.repeated, len(again.errors)) == (0, 2, 1)
    assert len(_charged()) == 2
    # Stored at the queue's device, numbered where no device's own jobs are.
    seqs = db.session.scalars(sa.select(Transaction.device_seq)).all()
    assert all(seq > PAGE_LOG_SEQ_BASE for seq in seqs)
    assert {tx.device_id for tx in db.session.scalars(sa.select(Transaction))} == {office.device.id}


def test_the_next_import_reads_only_what_was_added_and_waits_for_a_line_being_written(office, tmp_path):
    log_file = tmp_path / "page_log"
    log_file.write_text(line(1))
    assert import_page_log(office.server, log_file).imported == 1
    with log_file.open("a") as handle:
        handle.write(line(2) + line(3)[:30])  # CUPS is still writing job 3
    second = import_page_log(office.server, log_file)
    with log_file.open("a") as handle:
        handle.write(line(3)[30:])
    third = import_page_log(office.server, log_file)
    db.session.commit()

    assert (second.imported, second.repeated, second.errors) == (1, 0, [])
    assert (third.imported, third.repeated, third.errors) == (1, 0, [])
    assert len(_charged()) == 3


def test_a_rotated_log_continues_where_it_stopped(office, tmp_path):
    log_file = tmp_path / "page_log"
    log_file.write_text(line(1))
    import_page_log(office.server, log_file)
    with log_file.open("a") as handle:
        handle.write(line(2))  # written after the last import, before the rotation
    log_file.rename(tmp_path / "page_log.1")  # logrotate: renamed, a new file started
    log_file.write_text(line(3) + "not a page log line\n")

    result = import_page_log(office.server, log_file)
    db.session.commit()
    later = import_page_log(office.server, log_file)

    assert (result.imported, result.repeated) == (2, 0)
    assert result.errors[0][0] == 2 and len(result.errors) == 1
    assert len(_charged()) == 3
    assert (later.imported, later.repeated, later.errors) == (0, 0, [])


def test_unknown_queue_and_user_are_reported_and_imported_once_mapped(office, tmp_path, app):
    log_file = tmp_path / "page_log"
    log_file.write_text(line(1, "GBianchi") + line(2, queue="plotter") + line(3))

    result = import_page_log(office.server, log_file)
    db.session.commit()
    assert result.imported == 1
    assert [number for number, _ in result.errors] == [1, 2]
    assert "GBianchi" in result.errors[0][1] and "plotter" in result.errors[1][1]

    map_user(office.server, "GBianchi", office.luisa.id)
    db.session.commit()
    runner = app.test_cli_runner()
    out = runner.invoke(
        args=["device-accounting", "import-page-log", str(log_file), "--print-server", "cups1", "--from-start"]
    )

    assert out.exit_code == 1, out.output  # the plotter line is still skipped
    assert f"{log_file}:2:" in out.output and "plotter" in out.output
    assert "cups1: 1 imported, 1 read before" in out.output
    assert sorted(user for user, *_rest in _charged()) == sorted([office.mario.id, office.luisa.id])


def test_a_job_of_the_secure_queue_is_charged_at_release_not_from_the_log(office, tmp_path):
    job_uuid = "urn:uuid:2a7913db-b591-3939-68b0-4e6260748a07"
    held_jobs.submit_held_job(office.server, "mrossi", h.pdf(2), submission_key=f"{office.server.id}:7:{job_uuid}")
    db.session.commit()
    log_file = tmp_path / "page_log"
    log_file.write_text(line(7, queue="copydesk-secure", uuid=job_uuid, pages=2))

    result = import_page_log(office.server, log_file)

    assert (result.imported, result.held, result.errors) == (0, 1, [])
    assert _charged() == []


def test_another_attempt_at_the_same_cups_job_is_not_charged_again(office, tmp_path):
    log_file = tmp_path / "page_log"
    log_file.write_text(line(4) + line(4, time="02/Mar/2026:12:06:00 +0100"))

    result = import_page_log(office.server, log_file)

    assert (result.imported, result.repeated) == (1, 1)
    assert len(_charged()) == 1


def test_the_scheduled_import_reads_each_configured_log(office, tmp_path, monkeypatch):
    monkeypatch.setitem(current_app.config, "COPYDESK_PAGE_LOG_DIRS", [str(tmp_path)])
    log_file = tmp_path / "page_log"
    log_file.write_text(line(1) + line(2))
    office.server.page_log_path = str(log_file)
    db.session.commit()

    ((server, result),) = page_log.import_configured_logs()
    office.server.page_log_path = str(tmp_path / "missing")
    db.session.commit()
    ((_server, missing),) = page_log.import_configured_logs()

    assert server.id == office.server.id and result.imported == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PageLogJob)) == 2
    assert missing.imported == 0 and missing.errors[0][0] == 0

    # A path outside COPYDESK_PAGE_LOG_DIRS is refused when set, and not read should it be stored anyway.
    with pytest.raises(ValidationError) as refused:
        print_servers.update_print_server(office.server, {"page_log_path": "/etc/passwd"})
    assert "page_log_path" in refused.value.errors
    office.server.page_log_path = "/etc/passwd"
    db.session.commit()
    ((_server, outside),) = page_log.import_configured_logs()
    assert outside.imported == 0 and outside.errors[0][0] == 0 and "COPYDESK_PAGE_LOG_DIRS" in outside.errors[0][1]


def test_the_documented_cupsd_line_is_the_one_the_reader_expects():
    assert CUPSD_CONF_LINE in (ROOT / "docs" / "print-server.md").read_text()
