"""The licence gate: modules the licence does not list are skipped "not licensed", routes gone, data kept."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
import time_machine

from core.db import db
from modules.lan_licensing.tests.conftest import EVERY_FEATURE, licence_text


def _routes(app) -> list[str]:
    return [rule.rule for rule in app.url_map.iter_rules()]


def test_a_licence_without_invoicing_skips_it_at_the_next_start_and_a_licence_with_it_brings_it_back(start, tmp_path):
    app = start()
    assert app.extensions["copydesk"].enabled("invoicing")  # evaluating: every module
    with app.app_context():
        db.session.execute(
            sa.text(
                "INSERT INTO invoicing_billing_run (as_of, status, total, done, created_at) "
                "VALUES ('2026-03-31', 'done', 0, 0, CURRENT_TIMESTAMP)"
            )
        )
        db.session.commit()
    narrow = tmp_path / "narrow.lic"
    narrow.write_text(licence_text(licence_id="L-NARROW", modules=("rentals", "metering")))
    result = app.test_cli_runner().invoke(args=["licence", "install", str(narrow)])
    assert result.exit_code == 0, result.output
    assert "Restart" in result.output

    restarted = start()
    listing = restarted.test_cli_runner().invoke(args=["modules", "list"]).output
    line = next(row for row in listing.splitlines() if row.startswith("invoicing"))
    assert line.split()[2:] == ["skipped", "not", "licensed"]
    assert restarted.extensions["copydesk"].enabled("metering")
    assert not any("/invoices" in rule or "billing-runs" in rule for rule in _routes(restarted))
    assert restarted.test_client().get("/api/v1/invoices").status_code == 404
    assert restarted.test_client().get("/portal/invoices/").status_code == 404

    full = tmp_path / "full.lic"
    full.write_text(licence_text(licence_id="L-FULL", modules=EVERY_FEATURE))
    assert restarted.test_cli_runner().invoke(args=["licence", "install", str(full)]).exit_code == 0
    again = start()
    assert again.extensions["copydesk"].enabled("invoicing")
    assert any(rule.startswith("/api/v1/invoices") for rule in _routes(again))
    with again.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM invoicing_billing_run")) == 1


def test_a_tampered_or_foreign_file_is_refused_by_the_install_command(start, tmp_path):
    app = start()
    other = tmp_path / "other.lic"
    from modules.lan_licensing import licence as lic

    other.write_text(licence_text(key=lic.generate_key()))
    result = app.test_cli_runner().invoke(args=["licence", "install", str(other)])
    assert result.exit_code != 0 and "untrusted_key" in result.output
    tampered = tmp_path / "tampered.lic"
    envelope = lic.dearmour(licence_text())
    envelope["payload"]["modules"].append("device_accounting_plus")
    tampered.write_text(lic.armour(envelope))
    result = app.test_cli_runner().invoke(args=["licence", "verify", str(tampered)])
    assert result.exit_code != 0 and "changed after it was signed" in result.output


def test_after_the_evaluation_only_core_starts(start):
    app = start()
    with app.app_context():
        from modules.lan_licensing import installation

        installation.get()
        db.session.commit()
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=31), tick=False):
        later = start()
    statuses = later.extensions["copydesk"].resolution.statuses
    assert statuses["lan_licensing"].state == "enabled"
    assert {name for name, s in statuses.items() if s.state == "enabled"} == {"lan_licensing"}
    assert statuses["rentals"].reason == "not licensed"


def test_a_clock_set_back_during_the_evaluation_ends_it(start):
    app = start()
    with app.app_context():
        from modules.lan_licensing import installation

        installation.note_time(installation.get(), dt.datetime.now(dt.UTC) + dt.timedelta(days=3))
        db.session.commit()
    assert not start().extensions["copydesk"].enabled("rentals")
