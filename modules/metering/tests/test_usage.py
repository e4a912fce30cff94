"""Usage rules as pure functions: closings, grace, high-water marks, replacements, estimates, interpolation."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from modules.metering.usage import Billed, Point, Replacement, Scale, Stay, estimate_reading, meter_usage
from modules.rentals.periods import periods

D = dt.date.fromisoformat


def monthly(start: str, until: str):
    return periods(D(start), 1, None, D(until))


def usages(result):
    return [(r.period.start.isoformat(), r.status, r.usage) for r in result]


def test_first_period_opens_with_the_installation_counter_and_closes_within_grace():
    result = meter_usage(
        monthly("2026-01-01", "2026-01-01"),
        Stay(D("2026-01-01"), 10_000),
        [Point(D("2026-02-02"), 11_850)],
        [],
        10,
        D("2026-02-05"),
    )
    assert usages(result) == [("2026-01-01", "closed", 1_850)]
    assert (result[0].opening, result[0].closing) == (10_000, 11_850)


def test_reading_after_grace_does_not_close_the_period_and_is_missing_without_a_later_one():
    result = meter_usage(
        monthly("2026-01-01", "2026-01-01"),
        Stay(D("2026-01-01"), 10_000),
        [Point(D("2026-02-11"), 11_850)],
        [],
        10,
        D("2026-02-10"),
    )
    assert usages(result) == [("2026-01-01", "missing", None)]


def test_readings_after_as_of_are_ignored():
    result = meter_usage(
        monthly("2026-01-01", "2026-01-01"),
        Stay(D("2026-01-01"), 10_000),
        [Point(D("2026-02-06"), 11_850)],
        [],
        10,
        D("2026-02-05"),
    )
    assert result[0].missing


def test_latest_reading_up_to_the_end_of_the_grace_closes_the_period_and_later_ones_count_for_the_next():
    points = [
        Point(D("2026-01-20"), 10_500),
        Point(D("2026-01-31"), 10_900),
        Point(D("2026-02-03"), 11_000),
        Point(D("2026-03-05"), 11_400),
    ]
    result = meter_usage(
        monthly("2026-01-01", "2026-02-01"), Stay(D("2026-01-01"), 10_000), points, [], 10, D("2026-03-20")
    )
    assert usages(result) == [("2026-01-01", "closed", 1_000), ("2026-02-01", "closed", 400)]
    assert (result[1].opening, result[1].closing) == (11_000, 11_400)


def test_a_reading_before_the_last_day_closes_the_period_when_it_is_the_latest_the_run_sees():
    points = [Point(D("2026-01-25"), 10_800), Point(D("2026-02-07"), 10_950)]
    stay = Stay(D("2026-01-01"), 10_000)
    within_grace = meter_usage(monthly("2026-01-01", "2026-01-01"), stay, points, [], 10, D("2026-02-05"))
    after_grace = meter_usage(monthly("2026-01-01", "2026-01-01"), stay, points, [], 10, D("2026-02-10"))
    assert usages(within_grace) == [("2026-01-01", "closed", 800)]
    assert usages(after_grace) == [("2026-01-01", "closed", 950)]


def test_a_later_reading_in_the_grace_does_not_move_a_closing_already_billed():
    """Example A: the run of 5 February bills January with the reading of 2 February; 2-8 February are February's."""
    stay = Stay(D("2026-01-01"), 10_000)
    points = [Point(D("2026-02-02"), 11_850), Point(D("2026-02-08"), 12_000)]
    first_run = meter_usage(monthly("2026-01-01", "2026-01-01"), stay, points, [], 10, D("2026-02-05"))
    billed = {0: first_run[0].as_billed()}
    later_run = meter_usage(monthly("2026-01-01", "2026-02-01"), stay, points, [], 10, D("2026-03-20"), billed)
    assert first_run[0].usage == later_run[0].usage == 1_850
    assert later_run[0].status == "billed"
    # The 150 pages after the billed closing are February's: the reading of 8 February is its latest.
    assert usages(later_run)[1] == ("2026-02-01", "closed", 150)


def test_a_period_not_billed_takes_the_latest_reading_of_its_grace():
    stay = Stay(D("2026-01-01"), 10_000)
    points = [Point(D("2026-02-02"), 11_850), Point(D("2026-02-08"), 12_000), Point(D("2026-03-02"), 12_500)]
    result = meter_usage(monthly("2026-01-01", "2026-02-01"), stay, points, [], 10, D("2026-03-20"))
    assert usages(result) == [("2026-01-01", "closed", 2_000), ("2026-02-01", "closed", 500)]


def test_a_period_released_before_a_billed_one_ends_where_the_billed_one_started():
    """January's draft cancelled after February was billed: January bills again exactly the pages it held."""
    stay = Stay(D("2026-01-01"), 10_000)
    points = [Point(D("2026-02-02"), 11_850), Point(D("2026-02-08"), 12_000), Point(D("2026-03-02"), 12_500)]
    january = meter_usage(monthly("2026-01-01", "2026-01-01"), stay, points, [], 10, D("2026-02-05"))
    both = meter_usage(
        monthly("2026-01-01", "2026-02-01"), stay, points, [], 10, D("2026-03-05"), {0: january[0].as_billed()}
    )
    february_only = {1: both[1].as_billed()}
    result = meter_usage(monthly("2026-01-01", "2026-02-01"), stay, points, [], 10, D("2026-03-20"), february_only)
    assert usages(result) == [("2026-01-01", "closed", 1_850), ("2026-02-01", "billed", 650)]


def test_a_missing_period_before_a_billed_one_is_interpolated_up_to_where_that_one_started():
    stay = Stay(D("2026-01-01"), 0)
    points = [Point(D("2026-01-31"), 3_100), Point(D("2026-03-31"), 9_000)]
    billed = {
        2: Billed(opening=5_900, opening_on=D("2026-02-28"), closing=9_000, closing_on=D("2026-03-31"), counter=9_000)
    }
    result = meter_usage(monthly("2026-01-01", "2026-03-01"), stay, points, [], 0, D("2026-04-05"), billed)
    assert usages(result) == [
        ("2026-01-01", "closed", 3_100),
        ("2026-02-01", "closed", 2_800),
        ("2026-03-01", "billed", 3_100),
    ]


def test_worked_example_d_estimate_then_actuals_telescope():
    history = [Point(D("2026-01-30"), 11_000), Point(D("2026-04-30"), 20_000)]
    assert estimate_reading(history, D("2026-05-31")) == 23_100
    points = [
        *history,
        Point(D("2026-05-31"), 23_100, estimated=True),
        Point(D("2026-06-30"), 22_900),
        Point(D("2026-07-31"), 26_000),
    ]
    result = meter_usage(
        monthly("2026-05-01", "2026-07-01"), Stay(D("2026-05-01"), 20_000), points, [], 10, D("2026-08-15")
    )
    assert usages(result) == [
        ("2026-05-01", "closed", 3_100),
        ("2026-06-01", "closed", 0),
        ("2026-07-01", "closed", 2_900),
    ]
    assert result[0].estimated


def test_usage_across_a_replacement_counts_both_meters():
    # (old_final - previous) + (current - new_start) = (10_600 - 10_500) + (300 - 0)
    points = [Point(D("2026-01-31"), 10_500), Point(D("2026-02-28"), 300)]
    events = [Replacement(D("2026-02-10"), 10_600, 0)]
    result = meter_usage(
        monthly("2026-01-01", "2026-02-01"), Stay(D("2026-01-01"), 10_000), points, events, 0, D("2026-03-05")
    )
    assert usages(result) == [("2026-01-01", "closed", 500), ("2026-02-01", "closed", 400)]


def test_high_water_continues_from_the_new_start_after_a_replacement():
    points = [Point(D("2026-01-31"), 10_500), Point(D("2026-02-28"), 1_100), Point(D("2026-03-31"), 1_600)]
    events = [Replacement(D("2026-02-01"), 10_500, 1_000)]
    result = meter_usage(
        monthly("2026-01-01", "2026-03-01"), Stay(D("2026-01-01"), 10_000), points, events, 0, D("2026-04-05")
    )
    assert [r.usage for r in result] == [500, 100, 500]


def test_a_device_that_leaves_closes_its_last_period_with_its_final_counters():
    stay = Stay(D("2026-01-01"), 10_000, D("2026-02-15"), 12_000)
    points = [Point(D("2026-01-31"), 11_000), Point(D("2026-02-20"), 99_999)]
    result = meter_usage(monthly("2026-01-01", "2026-03-01"), stay, points, [], 10, D("2026-04-01"))
    assert usages(result) == [("2026-01-01", "closed", 1_000), ("2026-02-01", "final", 1_000)]


def test_missing_period_is_interpolated_once_a_later_reading_arrives():
    # 31 days of January, 28 of February: 5,900 pages over 59 days, 100 a day from the installation on.
    points = [Point(D("2026-02-28"), 15_900)]
    result = meter_usage(
        monthly("2026-01-01", "2026-02-01"), Stay(D("2026-01-01"), 10_000), points, [], 0, D("2026-03-05")
    )
    assert usages(result) == [("2026-01-01", "interpolated", 3_100), ("2026-02-01", "closed", 2_800)]


def test_estimate_needs_two_actual_readings_on_different_days():
    assert estimate_reading([Point(D("2026-04-30"), 20_000)], D("2026-05-31")) is None
    assert estimate_reading([Point(D("2026-04-30"), 20_000, estimated=True)], D("2026-05-31")) is None


def test_estimate_rounds_half_up_to_whole_pages():
    # 15 pages over 2 days = 7.5 a day; one day later: 7.5 -> 8.
    assert estimate_reading([Point(D("2026-04-28"), 0), Point(D("2026-04-30"), 15)], D("2026-05-01")) == 23


def test_estimate_starts_from_a_replacement_inside_the_window():
    points = [Point(D("2026-01-01"), 50_000), Point(D("2026-04-30"), 1_000)]
    events = [Replacement(D("2026-04-20"), 50_500, 0)]
    # 1,000 pages in the 10 days since the new meter started: 100 a day.
    assert estimate_reading(points, D("2026-05-10"), events) == 2_000


# Properties


@st.composite
def histories(draw, last_day: int = 400, most: int = 15):
    """A device's readings over a year: increments, some estimates above the truth, a replacement sometimes."""
    start_value = draw(st.integers(0, 10**9))
    days = sorted(draw(st.sets(st.integers(1, last_day), min_size=1, max_size=most)))
    value = start_value
    points, events, truth = [], [], start_value
    scale_offset = 0
    for day in days:
        on = D("2026-01-01") + dt.timedelta(days=day)
        increment = draw(st.integers(0, 50_000))
        if draw(st.integers(0, 9)) == 0 and not events:
            old_final = value + draw(st.integers(0, 1_000))
            new_start = draw(st.integers(0, 5_000))
            events.append(Replacement(on, old_final, new_start))
            truth += old_final - value
            scale_offset += old_final - new_start
            value = new_start
        if draw(st.integers(0, 5)) == 0:
            points.append(Point(on, value + increment + draw(st.integers(0, 20_000)), estimated=True))
            continue
        value += increment
        truth = value + scale_offset
        points.append(Point(on, value))
    return start_value, points, events, truth


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(0, 15), st.sampled_from([1, 2, 3]))
def test_usage_is_never_negative_and_no_page_is_counted_twice(history, grace, months):
    start_value, points, events, _truth = history
    stay = Stay(D("2026-01-01"), start_value)
    result = meter_usage(
        periods(D("2026-01-01"), months, None, D("2027-03-01")), stay, points, events, grace, D("2027-12-31")
    )
    billed = [r.usage for r in result if r.usage is not None]
    assert all(pages >= 0 for pages in billed)
    closed = [r for r in result if not r.missing]
    if closed:
        # Everything billed is the highest counter reached (on the cumulative scale) minus the installation counter.
        scale = Scale(events)
        highest = max(scale.cumulative(r.closing, r.closing_on) for r in closed)
        assert sum(billed) == max(0, highest - start_value)


@st.composite
def billing_histories(draw):
    """Readings that arrive late, runs at various dates (some with an older `as_of`), drafts billed and cancelled."""
    start_value, points, events, _truth = draw(histories(last_day=200, most=40))
    arrivals = [point.on + dt.timedelta(days=draw(st.integers(0, 30))) for point in points]
    run_days = sorted(draw(st.lists(st.integers(20, 260), min_size=1, max_size=8)))
    runs = [
        (
            D("2026-01-01") + dt.timedelta(days=day),
            draw(st.integers(0, 40)),  # how far before the run's day its as_of is
            draw(st.lists(st.booleans(), min_size=9, max_size=9)),  # which closed periods get a line
            draw(st.integers(0, 3)),  # a draft to cancel afterwards: 0 none, else the one that many runs back
        )
        for day in run_days
    ]
    return start_value, list(zip(points, arrivals, strict=True)), events, runs


def _check_telescopes(result, start, scale):
    closed = [r for r in result if not r.missing]
    assert all(r.usage >= 0 for r in closed)
    # Only a tail of periods waits for readings; the rest bill every page once, from the installation counter on.
    assert not any(r.missing for r in result[: len(closed)])
    if closed:
        highest = max(scale.cumulative(start.start_value, start.start), *(r.closing_value for r in closed))
        assert sum(r.usage for r in closed) == highest - scale.cumulative(start.start_value, start.start)


@settings(max_examples=300, deadline=None)
@given(billing_histories(), st.integers(0, 15))
def test_no_page_is_billed_twice_or_lost_across_runs_late_readings_and_cancelled_drafts(history, grace):
    """Periods billed keep their usage whatever arrives later; all periods together bill each page exactly once."""
    start_value, arriving, events, runs = history
    stay = Stay(D("2026-01-01"), start_value)
    scale = Scale(events)
    all_periods = periods(D("2026-01-01"), 1, None, D("2026-09-01"))
    billed: dict[int, Billed] = {}
    drafts: list[set[int]] = []
    for day, lag, takes, cancel in runs:
        as_of = day - dt.timedelta(days=lag)
        seen = [point for point, arrived in arriving if arrived <= day]
        result = meter_usage([p for p in all_periods if p.end < as_of], stay, seen, events, grace, as_of, billed)
        for r in result:
            if r.period.index in billed:
                record = billed[r.period.index]
                assert (r.status, r.usage) == ("billed", max(0, record.closing - record.opening))
        _check_telescopes(result, stay, scale)
        draft = {r.period.index for r in result if r.status != "billed" and not r.missing and takes[r.period.index]}
        billed.update({r.period.index: r.as_billed() for r in result if r.period.index in draft})
        drafts.append(draft)
        if 0 < cancel < len(drafts):
            for index in drafts[-1 - cancel]:
                billed.pop(index, None)
            drafts[-1 - cancel] = set()
    final = meter_usage(all_periods, stay, [p for p, _a in arriving], events, grace, D("2028-12-31"), billed)
    _check_telescopes(final, stay, scale)
    assert {r.period.index for r in final if r.status == "billed"} == set(billed)
