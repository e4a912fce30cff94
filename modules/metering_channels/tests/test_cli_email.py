"""`flask metering import-email`: saved .eml files become readings, or say why not, once each."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db
from modules.metering.models import Reading
from modules.metering_channels.tests import samples


def test_import_email_files_print_their_state_and_reason(app, tmp_path):
    with app.app_context():
        samples.on_contract("VCF1")
    good = tmp_path / "good.eml"
    good.write_bytes(samples.kyocera_message("VCF1", 11_850, 2_310, message_id="<cli@test>"))
    lost = tmp_path / "lost.eml"
    lost.write_bytes(samples.kyocera_message("NOPE", 11_850, 2_310))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["metering", "import-email", str(good), str(lost)])
    assert result.exit_code == 1
    assert f"{good}: read (VCF1; reading " in result.output
    assert f"{lost}: unmatched (NOPE; No device has serial number NOPE.)" in result.output

    again = runner.invoke(args=["metering", "import-email", str(good)])
    assert again.exit_code == 0 and "already imported" in again.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Reading)) == 1


def test_a_file_that_breaks_the_reader_is_reported_not_a_traceback(app, tmp_path, monkeypatch):
    from modules.metering_channels import email_profiles

    def broken(profile, msg):
        raise RuntimeError("a layout nobody foresaw")

    monkeypatch.setattr(email_profiles.Profile, "parse", broken)
    odd = tmp_path / "odd.eml"
    odd.write_bytes(samples.kyocera_message("VCF1", 11_850, 2_310))
    result = app.test_cli_runner().invoke(args=["metering", "import-email", str(odd)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert f"{odd}: unmatched (The message could not be read: see it in the queue.)" in result.output
