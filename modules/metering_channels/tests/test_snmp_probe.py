"""Probing the project's recordings, served by a real SNMP agent (snmpsim): each vendor profile reads its counters
and toner levels; the CLI prints them as JSON; SNMPv3 works; a broken answer says what it could not use."""

from __future__ import annotations

import json

import pytest

from modules.metering_channels.snmp import ProbeError, V3Credentials, note_text, probe
from modules.metering_channels.snmp_profiles import Note
from tests.snmp_server import free_udp_port

EXPECTED = {
    "kyocera": (
        "Kyocera",
        "TASKalfa 2553ci",
        "KYO2553001",
        {"bw": 15_200, "color": 4_000},
        # cyan says "some remaining" (-3), yellow "unknown" (-2): no percent to give for either
        {"black": 40, "magenta": 100},
    ),
    "ricoh": (
        "Ricoh",
        "RICOH IM C3000",
        "RIC3000123",
        {"bw": 45_000, "color": 15_000},
        {"black": 50, "cyan": 25, "magenta": 75, "yellow": 10},
    ),
    "konica_minolta": (
        "Konica Minolta",
        "KONICA MINOLTA bizhub C258",
        "A7R0021000123",
        {"bw": 15_000, "color": 5_000},
        {"black": 60, "cyan": 55, "magenta": 45, "yellow": 35},
    ),
    "hp": (
        "HP",
        "HP Color LaserJet MFP M480f",
        "CNBRM4X0HP",
        {"bw": 18_000, "color": 12_000},
        {"black": 45, "cyan": 100, "magenta": 50, "yellow": 10},
    ),
    "canon": (
        "Canon",
        "iR-ADV C5535",
        "2SK05123",
        {"bw": 21_000, "color": 6_500},
        {"black": 80, "cyan": 70, "magenta": 65, "yellow": 90},
    ),
    "xerox": (
        "Xerox",
        "Xerox AltaLink C8130",
        "XRX8130456",
        {"bw": 40_000, "color": 12_000},
        {"black": 30, "cyan": 40, "magenta": 50, "yellow": 60},
    ),
    "sharp": (
        "Sharp",
        "SHARP MX-3071",
        "SH3071789",
        {"bw": 33_000, "color": 11_000},
        {"black": 20, "cyan": 30, "magenta": 40, "yellow": 50},
    ),
    "lexmark": ("Lexmark", "Lexmark MS621", "4602LEX621", {"bw": 27_000, "color": 0}, {"black": 85}),
    # No profile for the make: the PWG imaging counters give bw and color.
    "pwg": (
        None,
        "Brother MFC-L9570CDW",
        "BRE9570111",
        {"bw": 7_000, "color": 2_500},
        {"black": 70, "cyan": 60, "magenta": 50, "yellow": 40},
    ),
    # Neither a profile nor PWG counters: the Printer-MIB page count, which does not tell bw from colour (the
    # poll makes it bw on a black-only model only, see test_snmp_poll).
    "generic_mono": (None, "Generic Laser 4000", "GEN4000555", {"total": 8_100}, {"black": 33}),
    # A colour MFP naming none of its toners: still only a total, never taken for bw.
    "colour_unnamed": (None, "Generic Colour MFP 5000", "GENC5000777", {"total": 9_000}, {}),
    # A Kyocera without fax has no fax counter: bw is print + copy, not "only part of its counters".
    "kyocera_nofax": (
        "Kyocera",
        "TASKalfa 2553ci",
        "KYONOFAX01",
        {"bw": 15_000, "color": 4_000},
        {"black": 40, "magenta": 100},
    ),
}


@pytest.mark.parametrize("recording", sorted(EXPECTED))
def test_each_recording_gives_its_counters_and_supplies(app, snmp_agent, recording):
    make, model, serial, counters, supplies = EXPECTED[recording]
    with app.app_context():
        result = probe(snmp_agent.host, snmp_agent.port, community=recording, timeout=1, retries=0)
    assert result.summary() == {
        "make": make,
        "model": model,
        "serial": serial,
        "counters": counters,
        "supplies": supplies,
    }


def test_cli_probe_prints_the_json(app, snmp_agent):
    result = app.test_cli_runner().invoke(
        args=["metering", "snmp", "probe", f"{snmp_agent.host}:{snmp_agent.port}", "--community", "canon"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "make": "Canon",
        "model": "iR-ADV C5535",
        "serial": "2SK05123",
        "counters": {"bw": 21_000, "color": 6_500},
        "supplies": {"black": 80, "cyan": 70, "magenta": 65, "yellow": 90},
    }


def test_cli_probe_with_snmpv3_user(app, snmp_agent):
    args = ["metering", "snmp", "probe", f"{snmp_agent.host}:{snmp_agent.port}", "--v3-user", snmp_agent.v3_user]
    args += ["--v3-auth-key", snmp_agent.v3_auth_key, "--v3-auth-protocol", "SHA"]
    args += ["--v3-priv-key", snmp_agent.v3_priv_key, "--v3-priv-protocol", "AES"]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counters"] == {"bw": 45_000, "color": 15_000}


def test_wrong_v3_key_is_an_authentication_failure(app, snmp_agent):
    v3 = V3Credentials(snmp_agent.v3_user, "not-the-key-000", "SHA", snmp_agent.v3_priv_key, "AES")
    with app.app_context(), pytest.raises(ProbeError) as failure:
        probe(snmp_agent.host, snmp_agent.port, v3=v3, timeout=1, retries=0)
    assert failure.value.outcome == "auth_failed"


def test_wrong_community_is_told_apart_from_no_device(app, snmp_agent):
    with app.app_context():
        with pytest.raises(ProbeError) as wrong:
            probe(snmp_agent.host, snmp_agent.port, community="not-a-community", timeout=0.5, retries=0)
        with pytest.raises(ProbeError) as nobody:
            probe("127.0.0.1", free_udp_port(), community="kyocera", timeout=0.5, retries=0)
    assert wrong.value.outcome == "auth_failed"
    assert "community" in wrong.value.message
    assert nobody.value.outcome == "unreachable"


def test_cli_probe_of_nothing_fails_with_the_reason(app):
    result = app.test_cli_runner().invoke(
        args=["metering", "snmp", "probe", f"127.0.0.1:{free_udp_port()}", "--timeout", "0.3", "--retries", "0"]
    )
    assert result.exit_code != 0
    assert "unreachable: No answer from 127.0.0.1" in result.output


def test_broken_answer_has_no_counters_and_says_why(app, snmp_agent):
    with app.app_context():
        result = probe(snmp_agent.host, snmp_agent.port, community="broken", timeout=1, retries=0)
    assert result.counters == {}
    assert result.supplies == {"magenta": 50, "yellow": 50}
    assert Note("negative", meter="bw") in result.notes
    assert Note("partial", meter="color") in result.notes


def test_notes_name_the_meter_and_the_colour_in_the_readers_language(app, snmp_agent):
    with app.test_request_context("/?lang=it"):
        result = probe(snmp_agent.host, snmp_agent.port, community="kyocera", timeout=1, retries=0)
        texts = [note_text(note) for note in result.notes]
    assert result.notes == [Note("some_remaining", colour="cyan"), Note("level_unknown", colour="yellow")]
    assert "Ciano" in texts[0] and "cyan" not in texts[0]
    assert "Giallo" in texts[1]
