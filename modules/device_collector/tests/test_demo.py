"""The collector's demo: the job-accounting devices enrolled with real certificates, one silent, one code open."""

from __future__ import annotations

import json

import lxml.html
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.tests import admin_support as s
from modules.device_collector import enrolment
from modules.device_collector.models import CollectorDevice, DeviceCertificate, EnrolmentCode, RefusedTransaction


def test_demo_enrols_devices_once_and_the_dashboard_names_the_silent_one(app):
    for _ in range(2):  # a second load adds nothing
        result = app.test_cli_runner().invoke(args=["demo", "load"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        enrolled = db.session.scalars(sa.select(CollectorDevice)).all()
        assert sorted(d.device.serial for d in enrolled) == ["2XK0123456", "2XK0123789", "VCF1234567"]
        for device in enrolled:
            certificate = db.session.scalar(
                sa.select(DeviceCertificate).where(DeviceCertificate.collector_device_id == device.id)
            )
            assert enrolment.check_certificate(certificate.fingerprint) == (device, None)
        states = sorted(enrolment.device_state(device) for device in enrolled)
        assert states == ["enrolled", "enrolled", "stale"]
        open_codes = db.session.scalars(sa.select(EnrolmentCode).where(EnrolmentCode.used_at.is_(None))).all()
        assert [code.device.serial for code in open_codes] == ["2XK0123789"]
        refused = db.session.scalars(sa.select(RefusedTransaction)).all()
        assert [(r.collector_device.device.serial, sorted(json.loads(r.errors))) for r in refused] == [
            ("2XK0123456", ["user_id"])
        ]
    client = s.staff(app, "technician")
    tree = lxml.html.fromstring(client.get("/admin/").get_data(as_text=True))
    link = tree.xpath("//a[contains(@href, 'device_collector_device') and contains(@href, 'state=stale')]")[0]
    listed = s.text_of(client.get(link.get("href")).get_data(as_text=True))
    assert "2XK0123789" in listed and "VCF1234567" not in listed
