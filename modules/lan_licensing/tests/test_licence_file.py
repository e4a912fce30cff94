"""The licence file: signed bytes verify; changed bytes, another key, not yet valid, other installation: refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from modules.lan_licensing import licence as lic
from modules.lan_licensing.tests.conftest import VENDOR, dealer_today, install, licence_text


def _rewrite(text: str, change) -> str:
    envelope = lic.dearmour(text)
    change(envelope)
    return lic.armour(envelope)


def test_a_signed_licence_reads_back_every_field():
    text = licence_text(seats=3, installation_id="inst-1", modules=("rentals", "metering"))
    assert text.splitlines()[1] == lic.BEGIN
    licence = lic.verify(text, [VENDOR.public_key()])
    assert (licence.seats, licence.installation_id, licence.modules) == (3, "inst-1", ("metering", "rentals"))
    assert licence.licensee_vat == "IT45678900155" and licence.tier_readings == 1000


def test_changed_bytes_are_refused_as_changed():
    def more_seats(envelope):
        envelope["payload"]["seats"] = 99

    with pytest.raises(lic.LicenceError) as refused:
        lic.verify(_rewrite(licence_text(), more_seats), [VENDOR.public_key()])
    assert refused.value.code == "tampered"
    assert "changed after it was signed" in refused.value.message


def test_a_damaged_body_is_refused():
    text = licence_text()
    lines = text.splitlines()
    lines[3] = lines[3][:10] + ("A" if lines[3][10] != "A" else "B") + lines[3][11:]
    with pytest.raises(lic.LicenceError) as refused:
        lic.verify("\n".join(lines), [VENDOR.public_key()])
    assert refused.value.code == "tampered"


def test_a_file_signed_by_another_key_is_refused_naming_that_key():
    other = lic.generate_key()
    with pytest.raises(lic.LicenceError) as refused:
        lic.verify(licence_text(key=other), [VENDOR.public_key()])
    assert refused.value.code == "untrusted_key"
    assert lic.key_id(other.public_key()) in refused.value.message


def test_another_key_id_pasted_in_does_not_help():
    other = lic.generate_key()

    def claim_vendor(envelope):
        envelope["key_id"] = lic.key_id(VENDOR.public_key())

    with pytest.raises(lic.LicenceError) as refused:
        lic.verify(_rewrite(licence_text(key=other), claim_vendor), [VENDOR.public_key()])
    assert refused.value.code == "tampered"


def test_not_yet_valid_and_another_installation_are_refused_at_install(start):
    app = start()
    later = licence_text(valid_from=dealer_today() + dt.timedelta(days=3))
    with pytest.raises(lic.LicenceError) as refused:
        install(app, later)
    assert refused.value.code == "not_yet_valid" and "not valid yet" in refused.value.message
    with pytest.raises(lic.LicenceError) as refused:
        install(app, licence_text(installation_id="somewhere-else"))
    assert refused.value.code == "other_installation" and "somewhere-else" in refused.value.message


def test_not_a_licence_at_all():
    with pytest.raises(lic.LicenceError) as refused:
        lic.verify("hello", [VENDOR.public_key()])
    assert refused.value.code == "unreadable"
    body = base64.b64encode(json.dumps({"format": 9}).encode()).decode()
    with pytest.raises(lic.LicenceError) as refused:
        lic.verify(f"{lic.BEGIN}\n{body}\n{lic.END}", [VENDOR.public_key()])
    assert refused.value.code == "unreadable" and "format 9" in refused.value.message


def test_the_vendor_cli_makes_a_key_issues_every_field_and_verifies(start, tmp_path):
    app = start()
    runner = app.test_cli_runner()
    key_file = tmp_path / "vendor.key"
    made = runner.invoke(
        args=["licence", "keygen", "--out", str(key_file)], env={"LICENCE_KEY_PASSPHRASE": "s3cret-phrase"}
    )
    assert made.exit_code == 0, made.output
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    public = next(line for line in made.output.splitlines() if line.startswith("ed25519:"))
    with pytest.raises(TypeError):  # encrypted: useless without the passphrase
        lic.load_private_key(key_file.read_bytes(), None)
    out = tmp_path / "L-9.lic"
    issued = runner.invoke(
        args=[
            "licence", "issue", "--key", str(key_file), "--licence-id", "L-9", "--licensee", "Ottica Rossi",
            "--vat-number", "IT01234567890", "--issued-at", "2026-01-02T09:00:00", "--valid-from", "2026-01-01",
            "--expires-at", "2027-12-31", "--modules", "rentals, metering", "--seats", "3", "--tier-name", "Medium",
            "--tier-readings", "20000", "--devices", "7", "--installation-id", "inst-9", "--out", str(out),
        ],
        env={"LICENCE_KEY_PASSPHRASE": "s3cret-phrase"},
    )  # fmt: skip
    assert issued.exit_code == 0, issued.output
    licence = lic.verify(out.read_text(), [lic.load_public_key(public)])
    assert (licence.licence_id, licence.licensee_name, licence.licensee_vat) == ("L-9", "Ottica Rossi", "IT01234567890")
    assert (licence.valid_from, licence.expires_at) == (dt.date(2026, 1, 1), dt.date(2027, 12, 31))
    assert licence.issued_at == dt.datetime(2026, 1, 2, 9, tzinfo=dt.UTC)
    assert (licence.modules, licence.seats, licence.tier_name, licence.tier_readings) == (
        ("metering", "rentals"),
        3,
        "Medium",
        20000,
    )
    assert (licence.devices, licence.installation_id) == (7, "inst-9")
    checked = runner.invoke(args=["licence", "verify", str(out), "--public-key", public])
    assert checked.exit_code == 0 and "The licence is valid." in checked.output and "Ottica Rossi" in checked.output
    # The installation does not trust that key: its own verify and install refuse, naming it.
    refused = runner.invoke(args=["licence", "verify", str(out)])
    assert refused.exit_code != 0 and "untrusted_key" in refused.output and licence.key_id in refused.output
    wrong = runner.invoke(
        args=["licence", "issue", "--key", str(key_file), "--licence-id", "x", "--licensee", "x", "--valid-from",
              "2026-01-01", "--expires-at", "2026-12-31", "--modules", "rentals", "--seats", "1", "--tier-name", "S",
              "--tier-readings", "1", "--out", str(tmp_path / "x.lic")],
        env={"LICENCE_KEY_PASSPHRASE": "not-the-phrase"},
    )  # fmt: skip
    assert wrong.exit_code != 0 and "cannot open the private key" in wrong.output


def test_the_demo_installs_a_licence_signed_by_a_key_it_makes(start):
    app = start()
    from core.db import db
    from modules.lan_licensing import demo, state

    with app.app_context():
        demo.load_demo()
        demo.load_demo()  # idempotent
        now_state = state.compute()
        db.session.commit()
    assert now_state.phase == "valid" and now_state.licence.tier_name == "Demo 5000"
    assert "rentals" in now_state.licence.modules and now_state.licence.installation_id == now_state.installation_id
    assert (Path(app.config["LICENCE_TRUST_DIR"]) / "demo-vendor.pub").exists()
