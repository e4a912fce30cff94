"""Contract period rules: the worked examples of billing-rules.md and property tests over dates, fees and bands."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.rentals.periods import (
    PERIOD_MONTHS,
    Period,
    add_months,
    band_amounts,
    device_active_days,
    escalate_fee,
    escalate_price,
    escalation_years,
    fee_due,
    line_amount,
    period_fee,
    periods,
    prorate_money,
    prorate_pages,
    validate_bands,
)

D = Decimal
bounded = settings(max_examples=200, deadline=None)

starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))
period_lengths = st.sampled_from(PERIOD_MONTHS)
money = st.decimals(min_value=0, max_value=100_000, places=2)
percents = st.decimals(min_value=0, max_value=20, places=2)
prices = st.decimals(min_value=0, max_value=1, places=6)


def spans(period_list: list[Period]) -> list[tuple[date, date]]:
    return [(p.start, p.end) for p in period_list]


# Periods


def test_monthly_periods_from_31_january_use_the_last_day_of_short_months():
    assert spans(periods(date(2026, 1, 31), 1, until=date(2026, 3, 31))) == [
        (date(2026, 1, 31), date(2026, 2, 27)),
        (date(2026, 2, 28), date(2026, 3, 30)),
        (date(2026, 3, 31), date(2026, 4, 29)),
    ]


def test_monthly_periods_from_29_february_fall_back_to_the_28th_in_later_months_only_when_needed():
    assert spans(periods(date(2024, 2, 29), 1, until=date(2024, 4, 29))) == [
        (date(2024, 2, 29), date(2024, 3, 28)),
        (date(2024, 3, 29), date(2024, 4, 28)),
        (date(2024, 4, 29), date(2024, 5, 28)),
    ]


def test_yearly_periods_from_29_february_start_on_28_february_in_non_leap_years():
    listed = periods(date(2024, 2, 29), 12, until=date(2028, 2, 29))
    assert spans(listed) == [
        (date(2024, 2, 29), date(2025, 2, 27)),
        (date(2025, 2, 28), date(2026, 2, 27)),
        (date(2026, 2, 28), date(2027, 2, 27)),
        (date(2027, 2, 28), date(2028, 2, 28)),
        (date(2028, 2, 29), date(2029, 2, 27)),
    ]
    assert [p.period_days for p in listed] == [365, 365, 365, 366, 365]


def test_quarterly_periods_from_30_november_cross_february():
    assert spans(periods(date(2025, 11, 30), 3, until=date(2026, 8, 30))) == [
        (date(2025, 11, 30), date(2026, 2, 27)),
        (date(2026, 2, 28), date(2026, 5, 29)),
        (date(2026, 5, 30), date(2026, 8, 29)),
        (date(2026, 8, 30), date(2026, 11, 29)),
    ]


def test_yearly_contract_ending_mid_year_has_a_clipped_last_period():
    listed = periods(date(2025, 7, 1), 12, end_date=date(2026, 12, 31))
    assert listed == [
        Period(0, date(2025, 7, 1), date(2026, 6, 30), 365, 365),
        Period(1, date(2026, 7, 1), date(2026, 12, 31), 365, 184),
    ]


def test_example_c_june_is_active_for_15_of_30_days():
    listed = periods(date(2026, 3, 1), 1, end_date=date(2026, 6, 15))
    assert [p.start.month for p in listed] == [3, 4, 5, 6]
    june = listed[-1]
    assert (june.start, june.end, june.period_days, june.active_days) == (date(2026, 6, 1), date(2026, 6, 15), 30, 15)


def test_until_lists_only_periods_started_by_then():
    listed = periods(date(2026, 1, 1), 1, until=date(2026, 3, 1))
    assert [p.start for p in listed] == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert periods(date(2026, 1, 1), 1, until=date(2025, 12, 31)) == []


def test_end_date_stops_the_periods_even_with_a_later_until():
    listed = periods(date(2026, 1, 1), 1, end_date=date(2026, 2, 10), until=date(2027, 1, 1))
    assert spans(listed) == [(date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 10))]


def test_contract_of_a_single_day_has_one_period_of_one_active_day():
    assert periods(date(2026, 5, 31), 1, end_date=date(2026, 5, 31)) == [
        Period(0, date(2026, 5, 31), date(2026, 5, 31), 30, 1)
    ]


@pytest.mark.parametrize("months", [0, 4, 5, 24, -1, True, 1.0])
def test_period_length_outside_the_allowed_choices_is_rejected(months):
    with pytest.raises(ValueError, match="Period months must be one of 1, 2, 3, 6, 12"):
        periods(date(2026, 1, 1), months, until=date(2026, 2, 1))


def test_end_date_before_start_date_is_rejected():
    with pytest.raises(ValueError, match="end date 2025-12-31 is before the start date 2026-01-01"):
        periods(date(2026, 1, 1), 1, end_date=date(2025, 12, 31))


def test_open_ended_contract_without_until_is_rejected():
    with pytest.raises(ValueError, match="until"):
        periods(date(2026, 1, 1), 1)


@bounded
@given(start=starts, months=st.integers(min_value=-1200, max_value=1200))
def test_add_months_counts_calendar_months_and_clips_to_the_month_end(start, months):
    moved = add_months(start, months)
    assert (moved.year * 12 + moved.month) - (start.year * 12 + start.month) == months
    month_end = (add_months(moved.replace(day=1), 1) - timedelta(days=1)).day
    assert moved.day == min(start.day, month_end)


@bounded
@given(start=starts, months=period_lengths, length=st.integers(min_value=0, max_value=3000))
def test_periods_tile_the_contract_with_no_gap_or_overlap(start, months, length):
    end = start + timedelta(days=length)
    listed = periods(start, months, end_date=end)
    assert listed[0].start == start
    assert listed[-1].end == end
    for before, after in pairwise(listed):
        assert after.start == before.end + timedelta(days=1)
    assert sum(p.active_days for p in listed) == length + 1
    assert [p.index for p in listed] == list(range(len(listed)))


@bounded
@given(start=starts, months=period_lengths, length=st.integers(min_value=0, max_value=3000))
def test_only_the_last_period_is_clipped_and_active_days_never_exceed_period_days(start, months, length):
    listed = periods(start, months, end_date=start + timedelta(days=length))
    for period in listed:
        assert period.period_days >= period.active_days >= 1
        assert period.active_days == (period.end - period.start).days + 1
        assert period.start + timedelta(days=period.period_days) == add_months(start, (period.index + 1) * months)
    assert all(p.active_days == p.period_days for p in listed[:-1])


@bounded
@given(start=starts, months=period_lengths, length=st.integers(min_value=0, max_value=3000))
def test_open_ended_periods_reach_until_and_stop_there(start, months, length):
    until = start + timedelta(days=length)
    listed = periods(start, months, until=until)
    assert listed[-1].start <= until <= listed[-1].end
    assert all(p.active_days == p.period_days for p in listed)


# Devices


def test_device_joined_mid_period_counts_from_its_joining_day():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    assert device_active_days(june, date(2026, 6, 21), None) == 10


def test_device_leaving_counts_its_leaving_day_as_its_last():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    assert device_active_days(june, date(2026, 3, 1), date(2026, 6, 10)) == 10
    assert device_active_days(june, date(2026, 6, 5), date(2026, 6, 5)) == 1


def test_device_outside_the_period_has_no_active_days():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    assert device_active_days(june, date(2026, 3, 1), date(2026, 5, 31)) == 0
    assert device_active_days(june, date(2026, 7, 1), None) == 0


def test_example_c_device_on_a_contract_ending_mid_june_is_active_15_days():
    june = periods(date(2026, 3, 1), 1, end_date=date(2026, 6, 15))[-1]
    assert device_active_days(june, date(2026, 3, 1), None) == 15


def test_device_leaving_before_joining_is_rejected():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    with pytest.raises(ValueError, match="leaving date 2026-06-01 is before the joining date 2026-06-02"):
        device_active_days(june, date(2026, 6, 2), date(2026, 6, 1))


@bounded
@given(
    start=starts,
    months=period_lengths,
    length=st.integers(min_value=0, max_value=1500),
    joined_offset=st.integers(min_value=-100, max_value=1600),
    stay=st.none() | st.integers(min_value=0, max_value=1600),
)
def test_device_days_over_all_periods_are_its_days_on_the_contract(start, months, length, joined_offset, stay):
    end = start + timedelta(days=length)
    joined = start + timedelta(days=joined_offset)
    left = None if stay is None else joined + timedelta(days=stay)
    listed = periods(start, months, end_date=end)
    per_period = [device_active_days(p, joined, left) for p in listed]
    assert all(0 <= days <= p.active_days for days, p in zip(per_period, listed, strict=True))
    first, last = max(start, joined), end if left is None else min(end, left)
    assert sum(per_period) == max(0, (last - first).days + 1)


# Proration


def test_example_c_june_fee_and_included_pages_are_halved():
    june = periods(date(2026, 3, 1), 1, end_date=date(2026, 6, 15))[-1]
    assert period_fee(D("60.00"), D("0"), date(2026, 3, 1), june) == D("30.00")
    assert prorate_pages(1000, june.active_days, june.period_days) == 500


def test_example_c_fee_in_arrears_is_due_only_after_the_period_ends():
    june = periods(date(2026, 3, 1), 1, end_date=date(2026, 6, 15))[-1]
    assert not fee_due(june, "arrears", date(2026, 6, 15))
    assert fee_due(june, "arrears", date(2026, 6, 16))


def test_fee_in_advance_is_due_from_the_first_day_of_the_period():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    assert not fee_due(june, "advance", date(2026, 5, 31))
    assert fee_due(june, "advance", date(2026, 6, 1))


def test_unknown_fee_timing_is_rejected():
    june = periods(date(2026, 3, 1), 1, until=date(2026, 6, 1))[-1]
    with pytest.raises(ValueError, match="Fee timing must be one of advance, arrears, not monthly"):
        fee_due(june, "monthly", date(2026, 6, 1))


def test_prorated_pages_and_money_round_half_up():
    assert prorate_pages(1, 1, 2) == 1
    assert prorate_pages(999, 1, 2) == 500
    assert prorate_pages(1000, 1, 3) == 333
    assert prorate_money(D("0.01"), 1, 2) == D("0.01")
    assert prorate_money(D("10.00"), 1, 3) == D("3.33")
    assert prorate_money(D("10.00"), 2, 3) == D("6.67")
    assert prorate_money(D("0.05"), 1, 10) == D("0.01")


def test_full_period_is_not_prorated():
    assert prorate_money(D("49.99"), 31, 31) == D("49.99")
    assert prorate_pages(1234, 28, 28) == 1234


def test_active_days_beyond_the_period_are_rejected():
    with pytest.raises(ValueError, match="Active days must be between 0 and the period's 30 days, not 31"):
        prorate_money(D("10.00"), 31, 30)


def test_float_money_is_refused():
    with pytest.raises(TypeError, match="amount must be a Decimal"):
        prorate_money(10.0, 1, 2)


@bounded
@given(amount=money, period_days=st.integers(min_value=1, max_value=366), data=st.data())
def test_prorated_money_lies_between_zero_and_the_full_amount_in_cents(amount, period_days, data):
    active_days = data.draw(st.integers(min_value=0, max_value=period_days))
    prorated = prorate_money(amount, active_days, period_days)
    assert D(0) <= prorated <= amount
    assert prorated == prorated.quantize(D("0.01"))
    assert abs(prorated - amount * active_days / period_days) <= D("0.005")


# Escalation


def test_example_e_fee_and_price_rise_from_the_first_anniversary():
    start = date(2025, 3, 1)
    listed = periods(start, 1, until=date(2026, 3, 1))
    february, march = listed[-2], listed[-1]
    assert period_fee(D("50.00"), D("3"), start, february) == D("50.00")
    assert period_fee(D("50.00"), D("3"), start, march) == D("51.50")
    assert escalate_price(D("0.012"), D("3"), escalation_years(start, february.start)) == D("0.012")
    assert escalate_price(D("0.012"), D("3"), escalation_years(start, march.start)) == D("0.01236")


def test_escalation_compounds_each_year():
    assert escalate_fee(D("50.00"), D("3"), 2) == D("53.05")
    assert escalate_price(D("0.012"), D("3"), 2) == D("0.012731")
    assert escalate_fee(D("100.00"), D("2.5"), 3) == D("107.69")


def test_escalation_years_counts_anniversaries_reached():
    start = date(2025, 3, 1)
    assert escalation_years(start, date(2025, 3, 1)) == 0
    assert escalation_years(start, date(2026, 2, 28)) == 0
    assert escalation_years(start, date(2026, 3, 1)) == 1
    assert escalation_years(start, date(2028, 2, 29)) == 2
    assert escalation_years(start, date(2028, 3, 1)) == 3


def test_contract_started_29_february_escalates_on_28_february_in_non_leap_years():
    start = date(2024, 2, 29)
    assert escalation_years(start, date(2025, 2, 27)) == 0
    assert escalation_years(start, date(2025, 2, 28)) == 1
    assert escalation_years(start, date(2028, 2, 28)) == 3
    assert escalation_years(start, date(2028, 2, 29)) == 4


def test_escalated_partial_period_is_escalated_before_it_is_prorated():
    start = date(2025, 3, 1)
    last = periods(start, 1, end_date=date(2026, 3, 10))[-1]
    assert (last.active_days, last.period_days) == (10, 31)
    # 60.00 -> 61.80, * 10/31 = 19.935 -> 19.94; prorating first would give 19.35 -> 19.93.
    assert period_fee(D("60.00"), D("3"), start, last) == D("19.94")


def test_negative_escalation_percent_is_rejected():
    with pytest.raises(ValueError, match="escalation percent must not be negative"):
        escalate_fee(D("50.00"), D("-1"), 1)


def test_period_before_the_contract_start_has_no_escalation_years():
    with pytest.raises(ValueError, match="period start 2025-02-28 is before the contract start 2025-03-01"):
        escalation_years(date(2025, 3, 1), date(2025, 2, 28))


@bounded
@given(fee=money, percent=percents, years=st.integers(min_value=0, max_value=30), more=st.integers(0, 10))
def test_escalation_never_decreases_with_years(fee, percent, years, more):
    assert escalate_fee(fee, percent, years) <= escalate_fee(fee, percent, years + more)


@bounded
@given(price=prices, low=percents, extra=percents, years=st.integers(min_value=0, max_value=30))
def test_escalation_never_decreases_with_the_percent(price, low, extra, years):
    assert escalate_price(price, low, years) <= escalate_price(price, low + extra, years)


@bounded
@given(start=starts, days=st.integers(min_value=0, max_value=20_000), more=st.integers(min_value=0, max_value=800))
def test_escalation_years_grow_with_the_period_start_and_match_anniversaries(start, days, more):
    period_start = start + timedelta(days=days)
    years = escalation_years(start, period_start)
    assert add_months(start, 12 * years) <= period_start < add_months(start, 12 * (years + 1))
    assert escalation_years(start, period_start + timedelta(days=more)) >= years


@bounded
@given(
    fee=money,
    percent=percents,
    start=starts,
    months=period_lengths,
    length=st.integers(min_value=0, max_value=3000),
)
def test_prorated_fee_never_exceeds_the_full_escalated_fee(fee, percent, start, months, length):
    for period in periods(start, months, end_date=start + timedelta(days=length)):
        full = escalate_fee(fee, percent, escalation_years(start, period.start))
        assert D(0) <= period_fee(fee, percent, start, period) <= full


# Bands

EXAMPLE_B_BANDS = [(5000, D("0.010")), (None, D("0.008"))]


def test_example_b_overage_is_priced_in_bands():
    split = band_amounts(7500, EXAMPLE_B_BANDS)
    assert split == [(5000, D("0.010")), (2500, D("0.008"))]
    assert [line_amount(pages, price) for pages, price in split] == [D("50.00"), D("20.00")]


def test_overage_within_the_first_band_uses_only_that_band():
    assert band_amounts(5000, EXAMPLE_B_BANDS) == [(5000, D("0.010"))]
    assert band_amounts(0, EXAMPLE_B_BANDS) == []


def test_single_price_is_one_unbounded_band():
    assert band_amounts(850, [(None, D("0.012"))]) == [(850, D("0.012"))]
    assert line_amount(850, D("0.012")) == D("10.20")


def test_line_amount_rounds_half_up_to_the_cent():
    assert line_amount(1, D("0.005")) == D("0.01")
    assert line_amount(3, D("0.001500")) == D("0.00")
    assert line_amount(1, D("0.004999")) == D("0.00")


@pytest.mark.parametrize(
    ("bands", "problem"),
    [
        ([], "at least one band"),
        ([(5000, D("0.01"))], "last band must have no upper bound"),
        ([(None, D("0.01")), (5000, D("0.008"))], "only the last band may be unbounded"),
        ([(5000, D("0.01")), (5000, D("0.008")), (None, D("0.005"))], "ascending and positive"),
        ([(5000, D("0.01")), (4000, D("0.008")), (None, D("0.005"))], "ascending and positive"),
        ([(0, D("0.01")), (None, D("0.008"))], "ascending and positive"),
        ([(5000, D("0.01")), (None, D("-0.008"))], "band 2 has a negative price"),
    ],
)
def test_malformed_bands_are_rejected_naming_the_problem(bands, problem):
    with pytest.raises(ValueError, match=f"Price bands: .*{problem}"):
        validate_bands(bands)


def test_negative_overage_is_rejected():
    with pytest.raises(ValueError, match="Overage pages must not be negative"):
        band_amounts(-1, EXAMPLE_B_BANDS)


band_lists = st.lists(st.integers(min_value=1, max_value=50_000), max_size=4, unique=True).flatmap(
    lambda bounds: st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1).map(
        lambda price_list: [*zip(sorted(bounds), price_list[:-1], strict=True), (None, price_list[-1])]
    )
)


@bounded
@given(overage=st.integers(min_value=0, max_value=200_000), bands=band_lists)
def test_band_pages_sum_to_the_overage_and_fill_bands_in_order(overage, bands):
    validate_bands(bands)
    split = band_amounts(overage, bands)
    assert sum(pages for pages, _ in split) == overage
    assert all(pages > 0 for pages, _ in split)
    assert [price for _, price in split] == [price for _, price in bands[: len(split)]]
    lower = 0
    for (pages, _), (up_to, _) in zip(split, bands, strict=False):
        if up_to is not None and lower + pages < overage:
            assert pages == up_to - lower
        lower += pages
