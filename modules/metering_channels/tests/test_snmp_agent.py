"""The on-site agent against the live app's API (a real HTTP server) and a real SNMP agent (snmpsim): it polls the
customer's devices and posts their readings with the agent token staff issued for that customer, which reaches that
customer's devices only; a customer user's ordinary token does not reach the agent API (it lists secrets)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from core.db import db
from modules.metering.models import Reading
from modules.metering.tests import support as s
from modules.metering_channels.api import issue_agent_token
from modules.metering_channels.models import SnmpDevice, SnmpPoll
from modules.metering_channels.snmp import AgentError, _api, run_agent, save_device, seal_secret
from tests.api_support import add_user, bearer


@pytest.fixture
def api_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/api/v1"
    server.shutdown()


def agent_device(agent, customer, serial, community, meters=("bw", "color")):
    """A device of `customer`, installed at its site and polled by its on-site agent."""
    device = s.device(serial, meters)
    s.contract(customer.id, [(device, dict.fromkeys(meters, 1_000))])
    db.session.add(
        SnmpDevice(
            device_id=device.id,
            host=agent.host,
            port=agent.port,
            version="2c",
            community_sealed=seal_secret(community),
            active=True,
            agent_customer_id=customer.id,
        )
    )
    db.session.commit()
    return device


def token_of(header: dict[str, str]) -> str:
    return header["Authorization"].removeprefix("Bearer ")


def agent_token(customer, email="agent@rossi.example") -> str:
    """The agent token staff issue for a user of `customer` (SNMP devices, On-site agent token)."""
    return issue_agent_token(add_user("customer_user", email=email, customer=customer))


def counters_of(device_id: int) -> list[dict[str, int]]:
    rows = db.session.scalars(sa.select(Reading).where(Reading.device_id == device_id, Reading.source == "snmp"))
    return [reading.counters for reading in rows]


def test_agent_posts_its_customers_readings_only(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    other = s.customer("Officina Verdi")
    mine = agent_device(snmp_agent, studio, "KYO2553001", "kyocera")
    theirs = agent_device(snmp_agent, other, "2SK05123", "canon")
    token = agent_token(studio)

    polls = run_agent(api_url, token, timeout=1, retries=0)

    assert [(poll["serial"], poll["outcome"]) for poll in polls] == [("KYO2553001", "read")]
    # The agent sends what it could not use as codes; the server words them with the colour's name.
    assert "Ciano" in polls[0]["message"] and "cyan" not in polls[0]["message"]
    db_session.expire_all()
    assert counters_of(mine.id) == [{"bw": 15_200, "color": 4_000}]
    assert counters_of(theirs.id) == []


def test_another_customers_device_is_refused(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    other = s.customer("Officina Verdi")
    theirs = agent_device(snmp_agent, other, "2SK05123", "canon")
    token = agent_token(studio)
    body = {
        "device_id": theirs.id,
        "taken_at": "2026-06-01T10:00:00+00:00",
        "outcome": "answered",
        "answer": {"serial": "2SK05123", "counters": {"bw": 99_000, "color": 9_000}},
    }
    with pytest.raises(AgentError, match="HTTP 404"):
        _api("POST", f"{api_url}/snmp-agent/polls", token, body)
    db_session.expire_all()
    assert counters_of(theirs.id) == []
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SnmpPoll)) == 0


def test_agent_reports_a_serial_mismatch_without_a_reading(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    device = agent_device(snmp_agent, studio, "NOT-THIS-ONE", "xerox")
    token = agent_token(studio)
    [poll] = run_agent(api_url, token, timeout=1, retries=0)
    assert poll["outcome"] == "serial_mismatch"
    assert "XRX8130456" in poll["message"]
    db_session.expire_all()
    assert counters_of(device.id) == []


def test_staff_token_is_not_an_agent_token(db_session, api_url):
    with pytest.raises(AgentError, match="HTTP 403"):
        run_agent(api_url, token_of(bearer("dealer_admin", email="boss@dealer.example")))


def test_agent_cli_prints_each_poll(app, snmp_agent, api_url):
    with app.app_context():
        studio = s.customer("Studio Rossi")
        agent_device(snmp_agent, studio, "SH3071789", "sharp")
        token = agent_token(studio)
    result = app.test_cli_runner().invoke(
        args=["metering", "snmp", "agent", "--api-url", api_url, "--token", token, "--timeout", "1"]
    )
    assert result.exit_code == 0, result.output
    # The server words the message in the dealer's language (Italian by default); the counters are what it read.
    assert "SH3071789: read - " in result.output
    assert "Bianco e nero 33.000, Colore 11.000." in result.output


def test_a_customer_users_own_token_does_not_reach_the_agent(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    agent_device(snmp_agent, studio, "KYO2553001", "kyocera")
    user = add_user("customer_admin", email="boss@rossi.example", customer=studio)
    issue_agent_token(user)  # the same user's agent token does not make the user's other tokens agent tokens
    from core.api.tokens import create_token

    _token, ordinary = create_token(user, "my script")
    for token in (ordinary, token_of(bearer("customer_user", customer=studio, email="clerk@rossi.example"))):
        with pytest.raises(AgentError, match="HTTP 403"):
            _api("GET", f"{api_url}/snmp-agent/devices", token)


def test_agent_gets_only_the_secrets_of_the_devices_snmp_version(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    device = agent_device(snmp_agent, studio, "RIC3000123", "unused-community")
    snmp_device = db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device.id))
    save_device(
        snmp_device,
        {
            "host": snmp_agent.host,
            "port": snmp_agent.port,
            "version": "3",
            "v3_user": snmp_agent.v3_user,
            "v3_auth_key": snmp_agent.v3_auth_key,
            "v3_priv_key": snmp_agent.v3_priv_key,
            "agent_customer_id": studio.id,
        },
    )
    db_session.commit()
    assert snmp_device.community_sealed is None  # switching to v3 drops the community
    [row] = _api("GET", f"{api_url}/snmp-agent/devices", agent_token(studio))
    assert row["community"] is None and row["v3_priv_key"] == snmp_agent.v3_priv_key
    save_device(snmp_device, {"host": snmp_agent.host, "port": snmp_agent.port, "version": "2c", "community": "ricoh"})
    save_device(
        snmp_device, {"version": "2c", "host": snmp_agent.host, "port": snmp_agent.port, "agent_customer_id": studio.id}
    )
    db_session.commit()
    assert snmp_device.v3_auth_key_sealed is None and snmp_device.v3_priv_key_sealed is None


def test_agent_reading_names_its_user_and_unreadable_credentials_are_reported(db_session, snmp_agent, api_url):
    studio = s.customer("Studio Rossi")
    mine = agent_device(snmp_agent, studio, "KYO2553001", "kyocera")
    broken = agent_device(snmp_agent, studio, "2SK05123", "canon")
    db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == broken.id)).community_sealed = "gAAAA-bad"
    db_session.commit()
    user = add_user("customer_user", email="agent@rossi.example", customer=studio)
    [poll] = run_agent(api_url, issue_agent_token(user), timeout=1, retries=0)
    assert poll["serial"] == "KYO2553001"
    db_session.expire_all()
    [reading] = db_session.scalars(sa.select(Reading).where(Reading.device_id == mine.id)).all()
    assert reading.entered_by == user.id
    failed = db_session.scalar(sa.select(SnmpPoll).where(SnmpPoll.device_id == broken.id))
    # Worded by the server in the dealer's language (Italian by default): the outcome is what staff filter on.
    assert failed.outcome == "auth_failed" and failed.message and "gAAAA" not in failed.message


def test_a_device_goes_to_an_agent_of_its_own_customer_only(db_session):
    from core.validation import ValidationError

    studio = s.customer("Studio Rossi")
    other = s.customer("Officina Verdi")
    device = s.device("KYO2553001")
    s.contract(studio.id, [(device, {"bw": 1_000, "color": 1_000})])
    data = {"device_id": device.id, "host": "10.0.0.5", "community": "public", "agent_customer_id": other.id}
    with pytest.raises(ValidationError) as refused:
        save_device(None, data)
    assert "agent_customer_id" in refused.value.errors
    assert "Officina Verdi" in str(refused.value.errors["agent_customer_id"])
    assert save_device(None, data | {"agent_customer_id": studio.id}).agent_customer_id == studio.id
