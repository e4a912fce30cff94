"""The devices and contracts the tests' counter report emails belong to; the emails themselves are built by
modules.metering_channels.samples (shared with the demo), re-exported here for the tests."""

from __future__ import annotations

from core.db import db
from modules.metering.tests import support as s
from modules.metering_channels.samples import (  # noqa: F401 (the tests' builders)
    MODELS,
    SENDERS,
    broken_base64,
    canon,
    hp,
    konica_html,
    kyocera,
    kyocera_message,
    lexmark,
    message,
    ricoh_csv,
    sent,
    sharp,
    xerox,
    xerox_xml,
)
from modules.rentals.devices import create_device


def device(serial: str, make: str = "Kyocera", meters: tuple[str, ...] = ("bw", "color")):
    return create_device(
        {"serial": serial, "manufacturer": make, "model": MODELS.get(make, "Printer"), "meters": list(meters)}
    )


def on_contract(serial: str, make: str = "Kyocera", meters: tuple[str, ...] = ("bw", "color"), **start: int):
    """A device on a contract since 2026-01-01 starting at `start` (bw 10,000 / color 2,000 by default)."""
    customer = s.customer(f"Studio {serial}")
    unit = device(serial, make, meters)
    counters = {meter: start.get(meter, {"bw": 10_000, "color": 2_000}.get(meter, 0)) for meter in meters}
    s.contract(customer.id, [(unit, counters)])
    db.session.commit()
    return unit
