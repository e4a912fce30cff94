"""Meter channels demo data: the counters mailbox (paused: the demo has no mail server), four counter report emails
it received last night (Hotel Bellavista's Ricoh, read; its bizhub, whose jump waits for review; the showroom's Canon,
read; a Kyocera no device has, waiting in the unmatched queue), and two devices polled over SNMP (an HP read, Studio
Bianchi's Kyocera unreachable). Idempotent: the mailbox is found by its name, the emails by their Message-ID, the SNMP
devices by their device."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_babel import gettext as _

from core import clock
from core.db import db
from modules.metering.demo import DAILY_PAGES
from modules.metering.history import last_values
from modules.metering.readings import record_reading
from modules.metering_channels import emails, samples
from modules.metering_channels.imap_poll import set_password
from modules.metering_channels.models import CounterEmail, Mailbox, SnmpDevice, SnmpPoll
from modules.metering_channels.snmp import seal_secret
from modules.rentals.models import Device

MAILBOX = "Letture contatori"
MAILBOX_ADDRESS = "letture@copyservice.example"
UIDVALIDITY = 1764633600
UNKNOWN_SERIAL = "VCF1299999"  # a customer's new Kyocera, not on file yet
# serial, make, sender, minutes after 19:00 yesterday, pages beyond the usual volume (a jump held for review)
EMAILS = (
    ("3100R400123", "Ricoh", "ricoh-imc3000@bellavista.it", 2, 0),
    ("A7PU021001234", "Konica Minolta", "bizhub360i@bellavista.it", 9, 6),
    ("2XK0124001", "Canon", "ir-c3826i@copyservice.example", 14, 0),
    (UNKNOWN_SERIAL, "Kyocera", "ecosys-m5526@sanmarco.it", 21, 0),
)
# The first counters of a device without readings yet.
FIRST_COUNTERS = {"bw": 41_230, "color": 9_874, "scan": 3_310}
# serial, host (None: the device's IP address), outcome; polled at 18:00 yesterday (the default schedule's hour)
SNMP_DEVICES = (
    ("PHBLR01299", "10.0.0.16", "read"),
    ("VCF1234567", None, "unreachable"),
)
SNMP_COUNTERS = {"bw": 48_215}


def message_id(serial: str) -> str:
    return f"counters-{serial}@demo.copyservice.example"


def load_demo() -> None:
    yesterday = clock.today() - dt.timedelta(days=1)
    evening = dt.datetime.combine(yesterday, dt.time(19, 0), clock.timezone())
    devices = {device.serial: device for device in db.session.scalars(sa.select(Device))}
    mailbox = _mailbox((evening + dt.timedelta(minutes=30)).astimezone(dt.UTC))
    for uid, (serial, make, sender, minutes, jump) in enumerate(EMAILS, start=101):
        key = message_id(serial)
        if db.session.scalar(sa.select(CounterEmail.id).where(CounterEmail.message_key == key)) is not None:
            continue
        if serial != UNKNOWN_SERIAL and serial not in devices:
            continue
        taken_at = evening + dt.timedelta(minutes=minutes)
        raw = _report(devices.get(serial), serial, make, sender, taken_at, jump, key)
        if raw is None:
            continue
        email = emails.import_message(raw, mailbox_id=mailbox.id, uidvalidity=UIDVALIDITY, uid=uid)
        email.received_at = (taken_at + dt.timedelta(minutes=3)).astimezone(dt.UTC)
        mailbox.last_uid = max(mailbox.last_uid or 0, uid)
        if email.state in emails.QUEUE_STATES:
            mailbox.unmatched_count = (mailbox.unmatched_count or 0) + 1
        else:
            mailbox.processed_count = (mailbox.processed_count or 0) + 1
    # Stored in UTC, as the poll stores its times (SQLite keeps no offset).
    polled_at = dt.datetime.combine(yesterday, dt.time(18, 0), clock.timezone()).astimezone(dt.UTC)
    for serial, host, outcome in SNMP_DEVICES:
        if serial in devices:
            _snmp_device(devices[serial], host, outcome, polled_at)
    db.session.commit()


def _mailbox(last_polled_at: dt.datetime) -> Mailbox:
    mailbox = db.session.scalar(sa.select(Mailbox).where(Mailbox.name == MAILBOX))
    if mailbox is None:
        mailbox = Mailbox(
            name=MAILBOX,
            host="imap.copyservice.example",
            port=993,
            security="ssl",
            username=MAILBOX_ADDRESS,
            active=False,  # no mail server in the demo: the poll would only fail
            last_polled_at=last_polled_at,
            uidvalidity=UIDVALIDITY,
            last_uid=100,
            processed_count=0,
            unmatched_count=0,
        )
        set_password(mailbox, "demo-placeholder")
        db.session.add(mailbox)
        db.session.flush()
    return mailbox


def _report(
    device: Device | None, serial: str, make: str, sender: str, taken_at: dt.datetime, jump: int, key: str
) -> bytes | None:
    """The device's counter report email: its counters the last ones plus the usual pages since (times `jump`)."""
    counters = dict(FIRST_COUNTERS)
    if device is not None:
        last = last_values(device)
        if any(known.at >= taken_at for known in last.values()):
            return None  # read after last night already: the report would be refused
        for meter, known in last.items():
            days = max(1, (taken_at - known.at).days)
            counters[meter] = known.value + DAILY_PAGES.get(meter, 10) * days * max(1, jump)
    model = device.model.name if device is not None else samples.MODELS.get(make, "")
    color = counters.get("color", 0) if device is None or device.model.color else 0
    scan = counters.get("scan", 0)
    when = taken_at.strftime
    if make == "Ricoh":
        body = "Counter information attached."
        csv = samples.ricoh_csv(serial, counters["bw"], color, when("%Y-%m-%d %H:%M"), scan=scan, model=model)
        options = {"attachment": ("counter.csv", csv)}
    elif make == "Konica Minolta":
        body = samples.konica_html(serial, counters["bw"], color, when("%Y/%m/%d %H:%M"), scan=scan, model=model)
        options = {"html": True}
    elif make == "Canon":
        body = samples.canon(serial, counters["bw"], color, when("%m/%d/%Y %I:%M %p"), scan=scan, model=model)
        options = {}
    else:
        body = samples.kyocera(serial, counters["bw"], color, when("%Y/%m/%d %H:%M"))
        options = {}
    return samples.message(
        make,
        body,
        subject=f"{model} counter report",
        message_id=f"<{key}>",
        sender=sender,
        to=MAILBOX_ADDRESS,
        date=taken_at,
        **options,
    )


def _snmp_device(device: Device, host: str | None, outcome: str, polled_at: dt.datetime) -> None:
    """The device's SNMP settings (v2c, the community sealed) and its last poll, as the poll would have logged it."""
    if db.session.scalar(sa.select(SnmpDevice.id).where(SnmpDevice.device_id == device.id)) is not None:
        return
    snmp_device = SnmpDevice(
        device_id=device.id,
        host=host,
        port=161,
        version="2c",
        community_sealed=seal_secret("public"),
        active=True,
        last_polled_at=polled_at,
        last_outcome=outcome,
    )
    poll = SnmpPoll(device_id=device.id, at=polled_at, outcome=outcome)
    if outcome == "read":
        counters = {meter: value for meter, value in SNMP_COUNTERS.items() if meter in device.model.meter_codes}
        recorded = record_reading(device.id, polled_at, counters, {"black": 64}, source="snmp")
        poll.reading_id = recorded.reading.id
        poll.message = _("Read %(counters)s.", counters=", ".join(f"{m} {v}" for m, v in sorted(counters.items())))
        poll.raw = {
            "summary": {
                "make": device.manufacturer.name,
                "model": device.model.name,
                "serial": device.serial,
                "counters": counters,
                "supplies": {"black": 64},
            },
            "profile": "hp",
            "notes": [],
            "raw": {},
        }
        snmp_device.last_ok_at = polled_at
    else:
        poll.message = _("No answer from %(host)s.", host=f"{host or device.ip_address}:161")
        snmp_device.last_error = poll.message
    db.session.add_all([snmp_device, poll])
    db.session.flush()
