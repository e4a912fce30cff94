"""/api/v1/snmp-agent: what the on-site SNMP agent needs, with an agent token the dealer issued for one customer.

The agent lists the devices it polls (`GET /devices`: those the dealer gave to this customer's agent, with their
SNMP credentials) and sends each answer (`POST /polls`). The server checks an answer exactly as its own polls:
the serial against the device on file, the counters through metering's `record_reading` (source `snmp`, within the
customer's tenure). Another customer's device answers `404`.

The device list carries plaintext SNMP secrets, so the API is not open to every customer user (they all have
`portal.readings`): only to the tokens staff issue on the back office's "On-site agent token" page
(`issue_agent_token`), whose ids are kept in setting `metering_channels.agent_tokens`. core's permissions are per
role and its roles are fixed, so the grant is per token: the same user's other tokens, any other customer user's
token and staff tokens get `403`. Revoking the token (Users, API tokens) ends it.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import request
from flask.views import MethodView
from flask_babel import gettext as _

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Integer, String, UtcDateTime
from core.api.helpers import committing, get_or_404, id_field
from core.api.tokens import create_token, hash_token
from core.auth.scoping import confined_customer
from core.db import db
from core.models import ApiToken, User
from core.settings import get_setting, set_setting
from core.validation import MAX_COUNTER
from modules.metering_channels import snmp
from modules.metering_channels.models import SnmpDevice
from modules.metering_channels.snmp_profiles import NOTE_CODES, Note
from modules.rentals.models import Device

AGENT_OUTCOMES = ("answered", "unreachable", "auth_failed", "bad_answer")
AGENT_TOKENS = "metering_channels.agent_tokens"
AGENT_TOKEN_NAME = "SNMP on-site agent"


def issue_agent_token(user: User) -> str:
    """A new agent token for a customer user (the agent's own user is best); returns the plaintext, shown once.
    Committed. Raises ValueError for a staff user."""
    if confined_customer(user) is None:
        raise ValueError("an agent token belongs to a customer user")
    token, plaintext = create_token(user, AGENT_TOKEN_NAME)
    set_setting(AGENT_TOKENS, sorted({*get_setting(AGENT_TOKENS, []), token.id}))
    db.session.commit()
    return plaintext


def agent_token_ids() -> set[int]:
    return {int(token_id) for token_id in get_setting(AGENT_TOKENS, [])}


agent_blp = ApiBlueprint(
    "metering_channels_agent",
    __name__,
    url_prefix="/snmp-agent",
    description="The on-site SNMP agent: the devices it polls at a customer's site, and their answers.",
)


class AgentDeviceSchema(ma.Schema):
    device_id = Integer()
    serial = ma.fields.String(attribute="device.serial")
    host = ma.fields.String(metadata={"description": "The address to poll (the device's IP address when not set)."})
    port = Integer()
    version = ma.fields.String(metadata={"enum": ["2c", "3"]})
    community = ma.fields.String(allow_none=True)
    v3_user = ma.fields.String(allow_none=True)
    v3_auth_protocol = ma.fields.String(allow_none=True)
    v3_auth_key = ma.fields.String(allow_none=True)
    v3_priv_protocol = ma.fields.String(allow_none=True)
    v3_priv_key = ma.fields.String(allow_none=True)


class NoteSchema(ma.Schema):
    code = String(required=True, validate=ma.validate.OneOf(NOTE_CODES))
    meter = String(load_default=None, validate=ma.validate.Length(max=20))
    colour = String(load_default=None, validate=ma.validate.Length(max=20))


class AnswerSchema(ma.Schema):
    make = String(allow_none=True, validate=ma.validate.Length(max=100))
    model = String(allow_none=True, validate=ma.validate.Length(max=200))
    serial = String(allow_none=True, validate=ma.validate.Length(max=100))
    counters = ma.fields.Dict(
        keys=String(validate=ma.validate.Length(min=1, max=20)),
        values=Integer(validate=ma.validate.Range(0, MAX_COUNTER)),
        required=True,
    )
    supplies = ma.fields.Dict(
        keys=String(validate=ma.validate.Length(min=1, max=20)),
        values=Integer(validate=ma.validate.Range(0, 100)),
        load_default=dict,
    )
    profile = String(load_default="printer-mib", validate=ma.validate.Length(max=30))
    notes = ma.fields.List(
        ma.fields.Nested(NoteSchema),
        load_default=list,
        validate=ma.validate.Length(max=50),
        metadata={"description": "The values the agent could not use, as codes (the server words them)."},
    )


class PollInSchema(ma.Schema):
    device_id = id_field(required=True)
    taken_at = UtcDateTime(required=True, metadata={"description": "When the agent read the device."})
    outcome = String(required=True, validate=ma.validate.OneOf(AGENT_OUTCOMES))
    message = String(load_default="", validate=ma.validate.Length(max=1000))
    answer = ma.fields.Nested(AnswerSchema, metadata={"description": "What the device answered (outcome answered)."})


class PollSchema(ma.Schema):
    id = Integer()
    device_id = Integer()
    serial = ma.fields.String(attribute="device.serial")
    at = UtcDateTime()
    outcome = ma.fields.String()
    message = ma.fields.String(allow_none=True)
    reading_id = Integer(allow_none=True)


def _agent_customer() -> int:
    """The customer of the request's agent token; 403 for any other token."""
    customer_id = confined_customer(api_user())
    _scheme, _sep, plaintext = request.headers.get("Authorization", "").partition(" ")
    token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.token_hash == hash_token(plaintext.strip())))
    if customer_id is None or token_id not in agent_token_ids():
        raise ApiProblem(403, _("The on-site agent needs the agent token the dealer issued for it."))
    return customer_id


def _agent_devices(customer_id: int) -> sa.Select:
    return (
        sa.select(SnmpDevice)
        .join(Device, Device.id == SnmpDevice.device_id)
        .where(
            SnmpDevice.active.is_(True),
            SnmpDevice.agent_customer_id == customer_id,
            Device.customer_id == customer_id,
        )
    )


def _as_agent_device(snmp_device: SnmpDevice) -> dict[str, Any] | None:
    """The device's settings for the agent (only its SNMP version's secrets); None when they cannot be read, after
    recording that poll's outcome so the back office shows it."""
    try:
        return snmp.settings_of(snmp_device) | {"device": snmp_device.device}
    except snmp.ProbeError as error:
        snmp.record_answer(snmp_device, error)
        return None


@agent_blp.route("/devices")
class AgentDevices(MethodView):
    @require("portal.readings")
    @agent_blp.response(200, AgentDeviceSchema(many=True))
    def get(self):
        """List the devices this customer's agent polls

        The devices the dealer set to be polled by this customer's on-site agent, with their SNMP credentials, in
        device order, each with only its SNMP version's secrets. Only an agent token may ask (`403` for any other,
        staff included). A device whose stored credentials cannot be read is left out, its poll log says why.
        """
        customer_id = _agent_customer()
        rows = db.session.scalars(_agent_devices(customer_id).order_by(SnmpDevice.device_id)).all()
        with committing():
            found = [_as_agent_device(row) for row in rows]
        return [row for row in found if row is not None]


@agent_blp.route("/polls")
class AgentPolls(MethodView):
    @require("portal.readings")
    @agent_blp.arguments(PollInSchema)
    @agent_blp.response(201, PollSchema)
    def post(self, data: dict[str, Any]):
        """Send one poll's answer

        Stored as the server's own polls are: a reading with source `snmp` when the serial is the device's and the
        counters pass metering's checks (else the poll's outcome says why: `serial_mismatch`, `refused`,
        `bad_answer`...). A device that is not one of this customer's agent devices answers `404`.
        """
        customer_id = _agent_customer()
        snmp_device = get_or_404(_agent_devices(customer_id).where(SnmpDevice.device_id == data["device_id"]))
        if data["outcome"] == "answered":
            answer = data.get("answer")
            if answer is None:
                raise ApiProblem(422, errors={"answer": _("Send what the device answered.")})
            result: snmp.ProbeResult | snmp.ProbeError = snmp.ProbeResult(
                make=answer.get("make"),
                model=answer.get("model"),
                serial=answer.get("serial"),
                counters=answer["counters"],
                supplies=answer["supplies"],
                sys_object_id=None,
                sys_descr=None,
                profile=answer["profile"],
                notes=[Note(**note) for note in answer["notes"]],
            )
        else:
            result = snmp.ProbeError(data["outcome"], data["message"] or _("The agent got no answer."))
        with committing():
            poll = snmp.record_answer(
                snmp_device, result, taken_at=data["taken_at"], customer_id=customer_id, entered_by=api_user().id
            )
        return poll, 201


BLUEPRINTS: list = [agent_blp]
