"""Each make's counter report email becomes the right counters of the right device's meters."""

from __future__ import annotations

import datetime as dt
import email
from email import policy

import pytest

from modules.metering_channels import email_profiles, emails
from modules.metering_channels.tests import samples

ROME = dt.timezone(dt.timedelta(hours=2))  # summer time on 31 March 2026


def parse(raw: bytes):
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    profile = email_profiles.detect(msg)
    assert profile is not None
    return profile, profile.parse(msg)


CASES = [
    ("Kyocera", samples.message("Kyocera", samples.kyocera("VCF9X12345", 11_850, 2_310)), "kyocera"),
    (
        "Ricoh",
        samples.message(
            "Ricoh",
            "Counter information attached.",
            attachment=("counter.csv", samples.ricoh_csv("E174M12345", 11_850, 2_310)),
        ),
        "ricoh",
    ),
    ("Canon", samples.message("Canon", samples.canon("2XY12345", 11_850, 2_310)), "canon"),
    (
        "Konica Minolta",
        samples.message("Konica Minolta", samples.konica_html("AA2J021012345", 11_850, 2_310), html=True),
        "konica_minolta",
    ),
    ("HP", samples.message("HP", samples.hp("CNBRP12345", 11_850, 2_310)), "hp"),
    ("Sharp", samples.message("Sharp", samples.sharp("3501234500", 11_850, 2_310)), "sharp"),
    ("Xerox", samples.message("Xerox", samples.xerox("3390123456", 11_850, 2_310)), "xerox"),
    ("Lexmark", samples.message("Lexmark", samples.lexmark("7538123456789", 14_160, 2_310)), "lexmark"),
]


@pytest.mark.parametrize(("make", "raw", "name"), CASES, ids=[case[0] for case in CASES])
def test_each_makes_report_gives_black_and_colour_counters(app, make, raw, name):
    with app.app_context():
        profile, report = parse(raw)
        assert (profile.name, profile.make) == (name, make)
        assert report.serial
        assert profile.meters(report.counters, ["bw", "color"]) == {"bw": 11_850, "color": 2_310}
        # 18:00 in Rome (or the Date header, noon UTC, for a report without a date of its own)
        assert report.taken_at.astimezone(dt.UTC).date() == dt.date(2026, 3, 31)


def test_report_date_without_zone_is_the_dealers_local_time(app):
    with app.app_context():
        _profile, report = parse(samples.message("Kyocera", samples.kyocera("VCF1", 100, 10)))
    assert report.taken_at.astimezone(ROME) == dt.datetime(2026, 3, 31, 18, 0, tzinfo=ROME)


def test_kyocera_counters_come_from_the_total_section_not_copier(app):
    with app.app_context():
        _profile, report = parse(samples.message("Kyocera", samples.kyocera("VCF1", 11_850, 2_310)))
    assert report.counters["Total Printed Pages: Black & White"] == 11_850
    assert report.counters["Total Printed Pages: Full Color"] == 2_310
    assert report.supplies == {"black": 45, "cyan": 80}


def test_a_mono_device_gets_only_its_black_meter(app):
    with app.app_context():
        profile, report = parse(samples.message("Xerox", samples.xerox("X1", 5_000, 0)))
        assert profile.meters(report.counters, ["bw"]) == {"bw": 5_000}
        profile, report = parse(samples.message("Lexmark", samples.lexmark("L1", 5_000, 0)))
        assert profile.meters(report.counters, ["bw"]) == {"bw": 5_000}


def test_scan_counter_goes_to_a_scan_meter_when_the_device_has_one(app):
    with app.app_context():
        profile, report = parse(samples.message("Canon", samples.canon("C1", 900, 100)))
    assert profile.meters(report.counters, ["bw", "color", "scan"]) == {"bw": 900, "color": 100, "scan": 640}


def test_hp_toner_levels_from_cartridges(app):
    with app.app_context():
        _profile, report = parse(samples.message("HP", samples.hp("H1", 900, 100)))
    assert report.supplies == {"black": 40, "cyan": 62}


def test_thousands_separators_are_read_as_whole_numbers():
    assert [email_profiles.whole_number(text) for text in ("12,345", "12.345", "12 345", "1234")] == [
        12_345,
        12_345,
        12_345,
        1_234,
    ]
    assert email_profiles.whole_number("-5") is None
    assert email_profiles.whole_number("12,34") is None


def test_a_message_of_no_known_make_is_not_a_report(app):
    raw = samples.message("Other", "Hello, please call me back.", subject="Question")
    with app.app_context():
        assert email_profiles.detect(email.message_from_bytes(raw, policy=policy.compat32)) is None


def test_message_key_is_the_message_id_or_a_hash_of_the_bytes():
    raw = samples.message("Kyocera", "x", message_id="<abc@dealer-client.test>")
    assert emails.message_key(email.message_from_bytes(raw), raw) == "abc@dealer-client.test"
    bare = b"Subject: no id\r\n\r\nbody"
    assert emails.message_key(email.message_from_bytes(bare), bare).startswith("sha256:")


def test_a_colour_device_whose_report_lacks_the_colour_line_gets_no_bw(app):
    with app.app_context():
        profile, report = parse(
            samples.message("Lexmark", samples.lexmark("L1", 14_160, 2_310).replace("  Color: 2310\n", ""))
        )
    assert report.counters == {"Total Pages": 14_160}
    assert profile.meters(report.counters, ["bw", "color"]) == {}  # not bw = 14,160: its colour pages are in it
    assert profile.meters(report.counters, ["bw"]) == {"bw": 14_160}


def test_a_us_date_is_read_month_first_and_a_european_one_day_first(app):
    with app.app_context():
        _profile, us = parse(
            samples.message("HP", samples.hp("H1", 900, 100, when="04/01/2026 18:00"), date=samples.sent("2026-04-01"))
        )
        _profile, eu = parse(
            samples.message(
                "Kyocera", samples.kyocera("K1", 900, 100, when="01/04/2026 18:00"), date=samples.sent("2026-04-01")
            )
        )
    assert us.taken_at.astimezone(ROME) == dt.datetime(2026, 4, 1, 18, 0, tzinfo=ROME)
    assert eu.taken_at.astimezone(ROME) == dt.datetime(2026, 4, 1, 18, 0, tzinfo=ROME)


def test_a_report_date_far_from_the_email_s_date_gives_way_to_the_email_s(app):
    with app.app_context():
        _profile, report = parse(
            samples.message(
                "Kyocera", samples.kyocera("K1", 900, 100, when="2000/01/01 00:05"), date=samples.sent("2026-04-01")
            )
        )
    assert report.taken_at == samples.sent("2026-04-01")  # the device's clock was reset


def test_an_xml_attachment_is_read(app):
    raw = samples.message(
        "Xerox", "Billing meters attached.", attachment=("billing.xml", samples.xerox_xml("3390123456", 11_850, 2_310))
    )
    with app.app_context():
        profile, report = parse(raw)
        assert (profile.name, report.serial) == ("xerox", "3390123456")
        assert profile.meters(report.counters, ["bw", "color", "scan"]) == {"bw": 11_850, "color": 2_310, "scan": 300}
        assert report.taken_at.astimezone(ROME) == dt.datetime(2026, 3, 31, 18, 0, tzinfo=ROME)


def test_an_xml_attachment_with_entities_or_too_large_is_not_read(app):
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        "<r><SerialNumber>&x;</SerialNumber><Meter name='Black Impressions'>5</Meter></r>"
    )
    huge = "<r>" + "<Meter name='Black Impressions'>5</Meter>" * 6000 + "</r>"
    with app.app_context():
        for content in (xxe, huge):
            raw = samples.message("Xerox", "Xerox billing meters attached.", attachment=("billing.xml", content))
            _profile, report = parse(raw)
            assert (report.serial, report.counters) == (None, {})


def test_a_hostile_report_is_read_in_well_under_a_second(app):
    import time

    html = "<p>Serial Number: K1</p>" + "<script " * 25_000  # an unclosed tag, 200,000 characters
    text = samples.kyocera("K1", 900, 100) + "a b" * 5_000 + "\n"  # a 15,000-character line
    msg = email.message_from_bytes(samples.message("Kyocera", text), policy=policy.compat32)
    html_msg = email.message_from_bytes(samples.message("Kyocera", html, html=True), policy=policy.compat32)
    with app.app_context():
        started = time.monotonic()
        assert email_profiles.by_name("kyocera").parse(msg).serial == "K1"
        assert email_profiles.by_name("kyocera").parse(html_msg).serial == "K1"
        assert time.monotonic() - started < 2  # the former patterns took minutes on these


def test_a_message_python_cannot_decode_never_raises(app, db_session):
    raw = (
        b"From: x@test\r\nSubject: KYOCERA counter report\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=idna\r\n"
        b"Content-Disposition: inline; filename*=idna''%FF\r\n\r\nSerial Number: K9\r\n"
    )
    counter_email, created = emails.receive(raw)
    assert created and counter_email.state == "unmatched"
    assert (counter_email.serial, counter_email.reason) == ("K9", "The report gives no counter.")


def test_ricoh_csv_header_with_a_colon_still_gives_the_scan_counter(app):
    with app.app_context():
        attachment = ("counter.csv", samples.ricoh_csv("E1", 11_850, 2_310, scan=5_123))
        profile, report = parse(samples.message("Ricoh", "Counter information attached.", attachment=attachment))
        assert profile.meters(report.counters, ["bw", "color", "scan"]) == {"bw": 11_850, "color": 2_310, "scan": 5_123}
