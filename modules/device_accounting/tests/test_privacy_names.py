"""Hidden document names: a customer that hides them finds the name in no table and no log line, however it arrived."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest

from core.db import db, utcnow
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.privacy import document_name_kept
from modules.device_accounting.tests import reports_support
from modules.device_accounting.tests.scan_support import places_holding
from tests.api_support import bearer

SECRET_NAME = "Licenziamento-Rossi-RISERVATO.docx"


def test_the_name_is_kept_trimmed_unless_the_customer_hides_names(db_session):
    open_customer = reports_support.customer("Studio Aperto")
    private = reports_support.customer("Studio Riservato")
    save_settings(private.id, {"hide_document_names": True})

    assert document_name_kept(open_customer.id, "  Offerta 2026.pdf ") == "Offerta 2026.pdf"
    assert document_name_kept(open_customer.id, "x" * 600) == "x" * 500
    assert document_name_kept(open_customer.id, "   ") is None
    assert document_name_kept(open_customer.id, None) is None
    assert document_name_kept(private.id, "Offerta 2026.pdf") is None


@pytest.fixture
def log_lines():
    """Every log record of every logger at DEBUG, SQLAlchemy's statements and their parameters included."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    engine = logging.getLogger("sqlalchemy.engine")
    saved = root.level, engine.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    engine.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        engine.setLevel(saved[1])


def _lines_with(records: list[logging.LogRecord], text: str) -> list[str]:
    found = []
    for record in records:
        line = record.getMessage()
        if record.exc_text:
            line += record.exc_text
        if text in line:
            found.append(f"{record.name}: {line[:200]}")
    return found


def _office(hide: bool):
    """A customer with an installed device, a price list, a print user with a small quota (the warning mail goes)."""
    from modules.device_accounting.pricing import save_price_list
    from modules.device_accounting.quotas import save_quota
    from modules.device_accounting.users import save_user

    partner = reports_support.customer("Studio Riservato" if hide else "Studio Aperto")
    save_settings(partner.id, {"hide_document_names": hide})
    printer = reports_support.device("PRIV-1" if hide else "OPEN-1", customer_id=partner.id)
    save_price_list(
        partner.id,
        {
            "name": "Listino",
            "valid_from": dt.date(2020, 1, 1),
            "entries": [{"function": "print", "colour": "bw", "price_per_side": "0.05"}],
        },
    )
    user = save_user(partner.id, {"username": "giulia", "full_name": "Giulia Bassi", "email": "giulia@example.com"})
    save_quota(partner.id, {"user_id": user.id, "period": "monthly", "amount": "1.00", "mode": "reset"})
    db.session.commit()
    return partner, printer, user


def _job(printer, user, seq: int) -> dict:
    ended = utcnow().replace(microsecond=0)
    return {
        "device_id": printer.id,
        "device_seq": seq,
        "user_id": user.id,
        "function": "print",
        "sides_bw": 18,
        "sides_color": 0,
        "paper_size": "A4",
        "duplex": False,
        "status": "done",
        "document_name": SECRET_NAME,
        "started_at": (ended - dt.timedelta(minutes=1)).isoformat(),
        "ended_at": ended.isoformat(),
    }


def test_a_hidden_name_is_in_no_table_and_no_log_line(app, db_session, client, log_lines):
    from modules.device_accounting.operations import record_transaction

    _partner, printer, user = _office(hide=True)
    db.engine.echo = True  # as an operator debugging SQL would run it
    try:
        tx, created = record_transaction(_job(printer, user, 1))
        db.session.commit()
        # The same through the API, as the collector and integrators send it.
        response = client.post(
            "/api/v1/device-accounting/transactions", json=_job(printer, user, 2), headers=bearer("dealer_admin")
        )
        assert response.status_code in (200, 201), response.get_json()
        assert SECRET_NAME not in response.get_data(as_text=True)
    finally:
        db.engine.echo = False

    # What was logged while the job was recorded (the scan below logs its own search for the name).
    logged = list(log_lines)
    assert created and tx.document_name is None and tx.cost == Decimal("0.9000")
    assert any("INSERT INTO device_accounting_transaction" in record.getMessage() for record in logged)
    assert _lines_with(logged, SECRET_NAME) == []
    assert places_holding(SECRET_NAME) == []


def test_the_same_checks_find_a_name_that_is_kept(app, db_session, log_lines):
    """The control: a customer that keeps names has it in the transaction, and the SQL log shows it."""
    from modules.device_accounting.operations import record_transaction

    _partner, printer, user = _office(hide=False)
    db.engine.echo = True
    try:
        tx, _created = record_transaction(_job(printer, user, 1))
        db.session.commit()
    finally:
        db.engine.echo = False
    logged = list(log_lines)
    assert tx.document_name == SECRET_NAME
    assert _lines_with(logged, SECRET_NAME)
    assert places_holding(SECRET_NAME) == ["device_accounting_transaction.document_name"]
