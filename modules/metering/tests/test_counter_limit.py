"""One counter limit for rentals and metering: an installation counter a reading could never follow is refused."""

from __future__ import annotations

import pytest

from core.validation import MAX_COUNTER, ValidationError
from modules.metering.readings import record_reading
from modules.metering.tests import support as s
from modules.rentals.contract_lines import remove_device

TOO_LONG = "The bw counter has more than 12 digits."


def test_installation_counter_of_ten_to_the_thirteen_is_refused_like_a_reading_of_it(db_session):
    customer, device = s.customer(), s.device("KY13")
    with pytest.raises(ValidationError) as installed:
        s.contract(customer.id, [(device, {"bw": 10**13, "color": 0})])
    db_session.rollback()
    customer, device = s.customer(), s.device("KY13")
    s.contract(customer.id, [(device, {"bw": 1_000, "color": 0})])
    with pytest.raises(ValidationError) as read:
        record_reading(device.id, s.at("2026-02-01"), {"bw": 10**13}, now=s.at("2026-02-02"))

    assert installed.value.errors == {"devices.0.counters.bw": TOO_LONG}
    assert read.value.errors == {"counters.bw": TOO_LONG}


def test_final_counter_above_the_limit_is_refused_and_the_device_stays_on_the_contract(db_session):
    customer, device = s.customer(), s.device("KY14")
    contract = s.contract(customer.id, [(device, {"bw": 1_000, "color": 0})])
    db_session.commit()
    with pytest.raises(ValidationError) as removed:
        remove_device(contract, device.id, "2026-03-01", {"bw": str(10**13), "color": "0"})
    db_session.rollback()

    assert removed.value.errors == {"counters.bw": TOO_LONG}
    assert [line.device_id for line in contract.open_lines] == [device.id]


def test_the_largest_counter_is_accepted_by_both(db_session):
    customer, device = s.customer(), s.device("KY15")
    s.contract(customer.id, [(device, {"bw": MAX_COUNTER - 10, "color": 0})])

    recorded = record_reading(device.id, s.at("2026-02-01"), {"bw": MAX_COUNTER}, now=s.at("2026-02-02"))

    assert recorded.reading.counters == {"bw": MAX_COUNTER}
