"""The one validation every reading channel shares: backwards counters, jumps, unknown meters, dates, bad numbers."""

from __future__ import annotations

import pytest

from core.settings import set_setting
from core.validation import ValidationError
from modules.metering.readings import record_reading
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from modules.metering.validation import validate_reading

NOW = s.at("2026-12-31")


@pytest.fixture
def device(db_session):
    customer = s.customer()
    device = s.device("KY1")
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
    return device


def errors_of(*args, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate_reading(*args, now=NOW, **kwargs)
    return caught.value.errors


def test_counter_lower_than_previous_is_rejected_naming_meter_last_value_and_date(device):
    s.read(device, "2026-02-02", bw=11_850, color=2_310)
    errors = errors_of(device.id, s.at("2026-03-02"), {"bw": 11_000, "color": 2_400})
    assert list(errors) == ["counters.bw"]
    message = errors["counters.bw"]
    assert "Black and white" in message and "11,850" in message and "2/2/26" in message
    assert "record the replacement first" in message


def test_counter_lower_than_the_installation_counter_is_rejected(device):
    errors = errors_of(device.id, s.at("2026-01-15"), {"bw": 9_999})
    assert "10,000" in errors["counters.bw"]


def test_estimates_do_not_count_as_the_previous_value(device, db_session):
    from modules.metering.models import Reading, ReadingValue

    db_session.add(
        Reading(
            device_id=device.id,
            taken_at=s.at("2026-01-31"),
            source="estimate",
            status="estimated",
            fingerprint="x" * 64,
            values=[ReadingValue(meter="bw", value=15_000)],
        )
    )
    db_session.flush()
    assert validate_reading(device.id, s.at("2026-02-10"), {"bw": 12_000}, now=NOW).status == "accepted"


def test_lower_counter_is_accepted_after_a_recorded_replacement(device):
    s.read(device, "2026-02-02", bw=11_850, color=2_310)
    record_replacement(device.id, "2026-02-10", "bw", 11_900, 0, today=NOW.date())
    checked = validate_reading(device.id, s.at("2026-03-02"), {"bw": 500}, now=NOW)
    assert checked.status == "accepted"


def test_counter_below_the_new_meter_start_is_rejected(device):
    record_replacement(device.id, "2026-02-10", "bw", 10_500, 100, today=NOW.date())
    assert "100" in errors_of(device.id, s.at("2026-03-02"), {"bw": 50})["counters.bw"]


def test_counter_higher_than_a_later_reading_is_rejected(device):
    s.read(device, "2026-03-02", bw=12_000)
    errors = errors_of(device.id, s.at("2026-02-02"), {"bw": 12_500})
    assert "12000" in errors["counters.bw"] and "2026-03-02" in errors["counters.bw"]


def test_jump_far_beyond_the_usual_volume_is_held_for_review(device):
    # 100 pages a day over 60 days, then 30,000 in 30 days (limit 100 x 30 x 3 = 9,000).
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    recorded = record_reading(device.id, s.at("2026-04-01"), {"bw": 46_000}, now=NOW)
    assert recorded.reading.status == "pending_review"
    assert "Black and white" in recorded.reading.reason and "30,000 pages in 30 days" in recorded.reading.reason


def test_jump_factor_is_a_dealer_setting(device):
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    set_setting("metering.jump_factor", 20)
    assert validate_reading(device.id, s.at("2026-04-01"), {"bw": 46_000}, now=NOW).status == "accepted"


def test_no_jump_check_without_enough_history(device):
    # Ten days of history is too little to know the device's volume.
    assert validate_reading(device.id, s.at("2026-01-11"), {"bw": 90_000}, now=NOW).status == "accepted"


def test_meter_the_model_does_not_have_is_rejected(device):
    mono = s.device("MONO1", meters=("bw",))
    errors = errors_of(mono.id, s.at("2026-02-01"), {"bw": 10, "color": 5})
    assert "color" in errors["counters.color"] and "MONO1" in errors["counters.color"]


def test_reading_dated_in_the_future_is_rejected(device):
    errors = errors_of(device.id, s.at("2027-01-05"), {"bw": 11_000})
    assert list(errors) == ["taken_at"]


def test_reading_before_the_device_was_installed_is_rejected(device):
    errors = errors_of(device.id, s.at("2025-12-30"), {"bw": 10_000})
    assert "2026-01-01" in errors["taken_at"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("12a", "whole number"),
        (12.5, "whole number"),
        (-3, "negative"),
        ("-3", "negative"),
        (10**12, "digits"),
        ("0001234567890123", "digits"),
        (True, "whole number"),
        ("", "empty"),
    ],
)
def test_bad_counter_values_are_rejected_naming_the_meter(device, value, problem):
    errors = errors_of(device.id, s.at("2026-02-01"), {"bw": value})
    assert problem in errors["counters.bw"] and "bw" in errors["counters.bw"]


def test_counters_for_some_meters_only_are_accepted_with_a_warning(device):
    checked = validate_reading(device.id, s.at("2026-02-01"), {"bw": 11_000}, now=NOW)
    assert checked.status == "accepted"
    assert any("color" in warning for warning in checked.warnings)


def test_no_counter_at_all_is_rejected(device):
    assert "counters" in errors_of(device.id, s.at("2026-02-01"), {})


def test_toner_levels_must_be_percentages_of_known_colours(device):
    errors = errors_of(device.id, s.at("2026-02-01"), {"bw": 11_000}, supplies={"black": 140, "green": 3})
    assert set(errors) == {"supplies.black", "supplies.green"}


def test_every_wrong_field_is_reported_at_once(device):
    errors = errors_of(device.id, "yesterday", {"bw": "x", "fax": 3})
    assert set(errors) == {"taken_at", "counters.bw", "counters.fax"}


def test_unknown_device_is_named(db_session):
    assert "device_id" in errors_of(999, s.at("2026-02-01"), {"bw": 1})
