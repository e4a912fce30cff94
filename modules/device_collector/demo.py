"""Demo collector state: the demo's job-accounting devices enrolled (one silent for three days), one code open, and
one job a device sent that the checks refused (a print user deleted meanwhile), sent through the real handler."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core.db import db, utcnow
from modules.device_collector import enrolment, handlers
from modules.device_collector.models import CollectorDevice, EnrolmentCode, RefusedTransaction
from modules.device_collector.protocol import PROTOCOL_VERSION, DeviceSession
from modules.device_collector.simulator import make_csr
from modules.rentals.models import Device

# serial -> (firmware, hours since last contact); None: an open enrolment code instead of an enrolment
DEMO_DEVICES = {
    "VCF1234567": ("Copydesk Embedded 2.4.1", 0),
    "2XK0123456": ("Copydesk Embedded 2.4.1", 0),
    "2XK0123789": ("Copydesk Embedded 2.3.0", 72),
}
OPEN_CODE_FOR = "2XK0123789"
REFUSED_FROM = "2XK0123456"
# A print user id no customer has: the job of a user deleted while the device was offline.
GONE_USER_ID = 2_000_000_000


def load_demo() -> None:
    """Idempotent: a device enrolled already, or holding an open code, is left alone."""
    devices = {d.serial: d for d in db.session.scalars(sa.select(Device).where(Device.serial.in_(DEMO_DEVICES)))}
    if not devices:
        return
    now = utcnow()
    for serial, (firmware, silent_hours) in DEMO_DEVICES.items():
        device = devices.get(serial)
        if device is None or db.session.scalar(
            sa.select(CollectorDevice).where(CollectorDevice.device_id == device.id)
        ):
            continue
        _code, plain = enrolment.create_code(device, None)
        csr_pem, _key_pem = make_csr(serial)  # the demo keeps no key: no real device holds it
        enrolled, _cert, _expires = enrolment.redeem_code(plain, csr_pem, "192.168.10.21:50112")
        enrolment.touch(
            enrolled,
            address="192.168.10.21:50112",
            firmware=firmware,
            protocol_version=1,
            capabilities=["card", "pin", "print", "copy", "scan"],
        )
        enrolled.last_seen_at = now - dt.timedelta(hours=silent_hours, minutes=5)
    _refused_job(devices.get(REFUSED_FROM))
    device = devices.get(OPEN_CODE_FOR)
    if device is not None:
        open_code = db.session.scalar(
            sa.select(EnrolmentCode).where(EnrolmentCode.device_id == device.id, EnrolmentCode.used_at.is_(None))
        )
        if open_code is None:
            enrolment.create_code(device, None)  # a replacement board waiting to be enrolled
    db.session.commit()


def _refused_job(device: Device | None) -> None:
    collector = device and db.session.scalar(sa.select(CollectorDevice).where(CollectorDevice.device_id == device.id))
    if collector is None or db.session.scalar(
        sa.select(RefusedTransaction.id).where(RefusedTransaction.collector_device_id == collector.id)
    ):
        return
    session = DeviceSession(
        address=collector.last_address or "",
        collector_device_id=collector.id,
        device_id=device.id,
        serial=device.serial,
        protocol_version=PROTOCOL_VERSION,
        hello_done=True,
        language="it",
    )
    ended = utcnow() - dt.timedelta(hours=2)
    job = {
        "device_seq": 9_000_001,
        "user_id": GONE_USER_ID,
        "function": "print",
        "sides_bw": 12,
        "sides_color": 0,
        "paper_size": "A4",
        "duplex": True,
        "status": "done",
        "started_at": (ended - dt.timedelta(minutes=1)).isoformat(),
        "ended_at": ended.isoformat(),
    }
    handlers.handle(session, "TXN", {"transactions": [job]})
