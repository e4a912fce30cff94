"""The rules' formula as a pure function: the worked example exactly, both verdicts and their edges, missing levels,
and the window's pages by metering's usage rules (high-water marks, replacements)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from modules.metering import usage as rules
from modules.metering_inventory.consumption import (
    NORMAL,
    OVER,
    UNDER,
    assess,
    nearest_level,
    toner_pages,
    window_usage,
)

D = dt.date.fromisoformat


def test_worked_example_gives_exactly_e_2_u_3_6_r_1_8_over_consumption():
    pages = toner_pages("black", {"bw": 24_000, "color": 6_000})
    result = assess(pages, 15_000, 3, 80, 20)
    assert pages == 30_000
    assert (result.expected, result.consumed, result.ratio) == (Decimal("2.0"), Decimal("3.6"), Decimal("1.8"))
    assert result.verdict == OVER


def test_colour_toner_counts_colour_pages_only_and_a_mono_device_its_bw_pages():
    assert toner_pages("cyan", {"bw": 24_000, "color": 6_000}) == 6_000
    assert toner_pages("black", {"bw": 9_000}) == 9_000
    assert toner_pages("black", {"bw": None, "color": 10}) is None


def test_a_missing_level_counts_both_as_zero():
    assert assess(30_000, 15_000, 3, None, 20).consumed == Decimal(3)
    assert assess(30_000, 15_000, 3, 80, None).consumed == Decimal(3)


def test_ratio_just_at_the_tolerance_is_normal_and_above_it_over():
    assert assess(75_000, 15_000, Decimal("6.5"), None, None).verdict == NORMAL  # E 5, R = 1.3
    assert assess(75_000, 15_000, Decimal("6.55"), None, None).verdict == OVER


def test_over_needs_a_whole_cartridge_more_than_expected():
    # R = 1.5 but U - E = 0.5: small volumes do not flag.
    assert assess(15_000, 15_000, Decimal("1.5"), None, None).verdict == NORMAL


def test_no_pages_with_cartridges_shipped_is_over_consumption():
    result = assess(0, 15_000, 1, None, None)
    assert result.verdict == OVER and result.ratio is None


def test_under_consumption_needs_two_cartridges_short_and_half_the_ratio():
    assert assess(60_000, 15_000, 1, None, None).verdict == UNDER  # E 4, U 1
    assert assess(45_000, 15_000, Decimal("1.5"), None, None).verdict == NORMAL  # E - U = 1.5


def test_a_higher_coverage_expects_more_cartridges_and_the_tolerance_is_the_settings():
    assert assess(30_000, 15_000, 3, None, None, coverage=Decimal(10)).expected == Decimal(4)
    assert assess(30_000, 15_000, Decimal("2.8"), None, None, tolerance=Decimal("0.5")).verdict == NORMAL


def test_window_pages_run_from_the_reading_before_it_across_a_meter_replacement():
    stay = rules.Stay(D("2025-06-01"), 10_000)
    points = [
        rules.Point(D("2025-12-31"), 20_000),
        rules.Point(D("2026-04-30"), 25_000),
        rules.Point(D("2026-06-30"), 1_000),  # after the new meter started at 0 on 1 June
    ]
    replaced = [rules.Replacement(D("2026-06-01"), 26_000, 0)]
    assert window_usage(points, replaced, stay, D("2026-01-01"), D("2026-11-30")) == 6_000 + 1_000


def test_window_pages_keep_the_high_water_mark_and_need_a_closing_reading():
    stay = rules.Stay(D("2025-06-01"), 10_000)
    points = [rules.Point(D("2025-12-31"), 20_000), rules.Point(D("2026-03-31"), 19_000)]
    assert window_usage(points, [], stay, D("2026-01-01"), D("2026-11-30")) == 0
    assert window_usage(points[:1], [], stay, D("2026-01-01"), D("2026-11-30")) is None


def test_a_device_installed_in_the_window_counts_from_its_installation_counter():
    stay = rules.Stay(D("2026-03-01"), 10_000)
    points = [rules.Point(D("2026-11-30"), 16_000)]
    assert window_usage(points, [], stay, D("2026-03-01"), D("2026-11-30")) == 6_000


def test_the_level_nearest_the_window_end_is_taken():
    at = lambda day: dt.datetime.combine(D(day), dt.time(12), dt.UTC)  # noqa: E731
    levels = [(at("2025-12-31"), 80), (at("2026-06-01"), 40), (at("2026-11-30"), 20)]
    assert nearest_level(levels, at("2026-01-01")) == 80
    assert nearest_level(levels, at("2026-12-01")) == 20
    assert nearest_level([], at("2026-12-01")) is None
