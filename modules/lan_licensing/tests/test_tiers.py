"""Reading tiers: accepted readings counted past the tier, warnings at 80 and 100; the usage report verifies."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db
from core.models import OutboxMessage
from core.signals import reading_recorded
from modules.lan_licensing import licence as lic
from modules.lan_licensing import tiers, usage_report
from modules.lan_licensing.tests.conftest import install, licence_text
from tests.auth_support import login, make_user


def _accept(app, count: int, commit: bool = True) -> None:
    """What metering does for each accepted reading: the signal inside the reading's transaction, then commit."""
    with app.app_context():
        for n in range(count):
            reading_recorded.send(app, reading_id=n + 1, device_id=1)
        if commit:
            db.session.commit()
        else:
            db.session.rollback()


def test_readings_past_the_tier_are_counted_with_emails_and_banners_at_80_and_100(start):
    app = start()
    install(app, licence_text(tier_name="Tiny", tier_readings=5))
    with app.app_context():
        make_user("anna@dealer.it", name="Anna Rossi", language="en")
    _accept(app, 3)
    client = app.test_client()
    login(client, "anna@dealer.it")
    assert "Readings this licence year" not in client.get("/admin/").get_data(as_text=True)
    _accept(app, 1)  # 4 of 5: 80
    assert "4 of the 5 of tier Tiny" in client.get("/admin/").get_data(as_text=True)
    _accept(app, 3)  # 7 of 5: 100 passed, 2 beyond
    with app.app_context():
        used = tiers.usage()
        assert (used.readings, used.excess) == (7, 2)
        subjects = db.session.scalars(sa.select(OutboxMessage.subject).order_by(OutboxMessage.id)).all()
    assert len(subjects) == 2, subjects
    page = client.get("/admin/licence/").get_data(as_text=True)
    assert "2 beyond the tier" in page and 'data-readings="7"' in page


def test_a_reading_rolled_back_is_not_counted(start):
    app = start()
    install(app, licence_text(tier_name="Tiny", tier_readings=5))
    _accept(app, 2)
    _accept(app, 1, commit=False)
    with app.app_context():
        assert tiers.usage().readings == 2


def test_readings_are_counted_while_evaluating_too(start):
    app = start()
    _accept(app, 1)
    with app.app_context():
        assert tiers.usage().readings == 1


def test_the_usage_report_verifies_and_a_changed_one_does_not(start, tmp_path):
    app = start()
    install(app, licence_text(tier_readings=5))
    _accept(app, 6)
    out = tmp_path / "usage.txt"
    assert app.test_cli_runner().invoke(args=["licence", "usage-report", "--out", str(out)]).exit_code == 0
    checked = app.test_cli_runner().invoke(args=["licence", "verify-report", str(out)])
    assert checked.exit_code == 0 and '"readings": 6' in checked.output
    payload = usage_report.verify(out.read_text())
    assert payload["tier"]["excess"] == 1 and payload["licence_id"] == "L-2026-001"

    envelope = lic.dearmour(out.read_text(), usage_report.BEGIN, usage_report.END)
    envelope["payload"]["readings"] = 2
    (tmp_path / "changed.txt").write_text(lic.armour(envelope, "", usage_report.BEGIN, usage_report.END))
    refused = app.test_cli_runner().invoke(args=["licence", "verify-report", str(tmp_path / "changed.txt")])
    assert refused.exit_code != 0 and "changed after it was signed" in refused.output
    someone = lic.public_key_text(lic.generate_key().public_key())
    refused = app.test_cli_runner().invoke(args=["licence", "verify-report", str(out), "--installation-key", someone])
    assert refused.exit_code != 0 and "another installation" in refused.output
