"""The SNMP back office through its real forms and CSRF tokens, against the tests' snmpsim: a device's SNMP settings
(community write-only), "Poll now" from the device's page, the poll errors there and in the poll log."""

from __future__ import annotations

import re

import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from modules.metering.models import Reading
from modules.metering.tests import support as s
from modules.metering_channels.models import SnmpDevice
from modules.metering_channels.snmp import seal_secret, unseal_secret
from tests.auth_support import CSRF_RE, login, make_user


def logged_in(app, role: str = "dealer_admin"):
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@example.it", role)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def token(client, url: str) -> str:
    return CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)


def on_contract(serial: str) -> int:
    customer = s.customer(f"Customer of {serial}")
    device = s.device(serial)
    s.contract(customer.id, [(device, {"bw": 1_000, "color": 100})])
    db.session.commit()
    return device.id


def test_snmp_settings_saved_with_a_sealed_community_then_poll_now(app, snmp_agent):
    with app.app_context():
        device_id = on_contract("KYO2553001")
    client = logged_in(app)
    url = "/admin/metering_channels_snmp_device/new/"
    form = {
        "csrf_token": token(client, url),
        "device": str(device_id),
        "host": snmp_agent.host,
        "port": str(snmp_agent.port),
        "version": "2c",
        "community": "kyocera",
        "v3_auth_protocol": "SHA",
        "v3_priv_protocol": "AES",
        "active": "y",
        "agent_customer": "",
    }
    assert client.post(url, data=form).status_code == 302
    with app.app_context():
        stored = db.session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device_id))
        assert stored.community_sealed != "kyocera" and unseal_secret(stored.community_sealed) == "kyocera"
        stored_id = stored.id
    details = client.get(f"/admin/metering_channels_snmp_device/details/?id={stored_id}").get_data(as_text=True)
    assert "kyocera" not in details

    page = client.get(f"/admin/rentals_device/details/?id={device_id}").get_data(as_text=True)
    assert "SNMP polls" in page and "Not polled yet." in page
    poll_url = f"/admin/metering_channels_snmp_device/{device_id}/poll"
    assert poll_url in page
    answer = client.post(
        poll_url, data={"csrf_token": token(client, poll_url), "next": "device"}, follow_redirects=True
    )
    text = answer.get_data(as_text=True)
    assert "KYO2553001: Read. Read Black and white 15,200, Colour 4,000." in text
    with app.app_context():
        [reading] = db.session.scalars(sa.select(Reading).where(Reading.device_id == device_id)).all()
        assert (reading.source, reading.counters) == ("snmp", {"bw": 15_200, "color": 4_000})


def test_a_community_is_required_and_named(app):
    with app.app_context():
        device_id = on_contract("KYO2553001")
    client = logged_in(app)
    url = "/admin/metering_channels_snmp_device/new/"
    form = {"csrf_token": token(client, url), "device": str(device_id), "host": "10.0.0.5", "port": "161"}
    form |= {"version": "2c", "v3_auth_protocol": "SHA", "v3_priv_protocol": "AES", "agent_customer": ""}
    page = client.post(url, data=form).get_data(as_text=True)
    assert "Give the SNMP community (often public)." in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SnmpDevice)) == 0


def test_poll_errors_show_on_the_device_and_in_the_log(app, snmp_agent):
    with app.app_context():
        device_id = on_contract("NOT-THIS-SERIAL")
        db.session.add(
            SnmpDevice(
                device_id=device_id,
                host=snmp_agent.host,
                port=snmp_agent.port,
                version="2c",
                community_sealed=seal_secret("xerox"),
                active=True,
            )
        )
        db.session.commit()
    client = logged_in(app)
    poll_url = f"/admin/metering_channels_snmp_device/{device_id}/poll"
    client.post(poll_url, data={"csrf_token": token(client, poll_url), "next": "device"})
    page = client.get(f"/admin/rentals_device/details/?id={device_id}").get_data(as_text=True)
    assert "Another serial number" in page and "XRX8130456" in page
    log = client.get("/admin/metering_channels_snmp_poll/").get_data(as_text=True)
    assert "Another serial number" in log


def test_staff_issue_the_agent_token_shown_once_and_it_reaches_the_agent_api(app):
    from tests.api_support import add_user

    with app.app_context():
        studio = s.customer("Studio Rossi")
        user_id = add_user("customer_user", email="agent@rossi.example", customer=studio).id
    client = logged_in(app)
    url = "/admin/metering_channels_snmp_device/agent-token"
    assert "agent@rossi.example" in client.get(url).get_data(as_text=True)
    page = client.post(url, data={"csrf_token": token(client, url), "user_id": str(user_id)}).get_data(as_text=True)
    plaintext = re.search(r"<code>(cdk_[^<]+)</code>", page).group(1)
    assert plaintext not in client.get(url).get_data(as_text=True)
    api = app.test_client()
    answer = api.get("/api/v1/snmp-agent/devices", headers={"Authorization": f"Bearer {plaintext}"})
    assert answer.status_code == 200 and answer.get_json() == []


def test_a_technician_cannot_issue_an_agent_token(app):
    client = logged_in(app, "technician")
    assert client.get("/admin/metering_channels_snmp_device/agent-token").status_code == 403


def test_every_job_label_of_the_module_is_a_scheduled_job(app):
    from core import labels

    with app.app_context():
        jobs = app.extensions["copydesk"].periodic_jobs.values()
        scheduled = {f"{job.func.__module__}:{job.func.__qualname__}" for job in jobs}
        labelled = {key for key in labels.enums()["job.func"] if key.startswith("modules.metering_channels")}
    assert labelled and labelled <= scheduled
