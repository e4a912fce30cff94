"""SNMP: probing a device (pysnmp 7, asyncio), polling the configured devices into readings with source `snmp`.

`probe` asks a device for the system and Printer-MIB values, then for what its make's profile needs, walks the
supplies and PWG counter tables, and lets `snmp_profiles.interpret` say what it all means; it writes nothing.
`poll_devices` probes many devices at once (at most `metering_channels.snmp_concurrency`), then, one by one in the
caller's session, checks each answer against the device on file and records it through metering's `record_reading`;
every poll leaves an `SnmpPoll` row, and an unreachable device, a wrong community, another serial or an answer
without usable counters is reported there, never stored as a reading.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from flask_babel import gettext as _

from core import crypto, labels
from core.db import db, utcnow
from core.settings import get_setting
from core.validation import Checker, ValidationError
from modules.metering.models import SUPPLY_COLOURS
from modules.metering_channels import snmp_profiles
from modules.metering_channels.models import SnmpDevice, SnmpPoll, set_poll_state
from modules.metering_channels.snmp_profiles import TOTAL, Note

T = TypeVar("T")

log = logging.getLogger(__name__)

PURPOSE = "metering_channels.snmp"
DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRIES = 1
# Seconds one device's whole probe may take (a device answering every request just before the timeout, or a long
# walk, would otherwise hold its slot of the concurrency for ever): metering_channels.snmp_deadline.
DEFAULT_DEADLINE = 60.0
AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "3DES", "AES", "AES192", "AES256")
# A reachable SNMPv3 agent answers any request with a report, even for a user it does not know.
DISCOVERY_USER = "copydesk-discovery"
MAX_REPETITIONS = 25
MAX_WALK_ROWS = 2000


@dataclass
class V3Credentials:
    user: str
    auth_key: str | None = None
    auth_protocol: str = "SHA"
    priv_key: str | None = None
    priv_protocol: str = "AES"


@dataclass
class Target:
    """Where and how to ask one device; `key` is the caller's (a device id)."""

    host: str
    port: int = 161
    community: str | None = None
    v3: V3Credentials | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    key: Any = None
    deadline: float | None = DEFAULT_DEADLINE


@dataclass
class ProbeResult:
    make: str | None
    model: str | None
    serial: str | None
    counters: dict[str, int]
    supplies: dict[str, int]
    sys_object_id: str | None
    sys_descr: str | None
    profile: str
    notes: list[Note] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What `flask metering snmp probe` prints."""
        return {
            "make": self.make,
            "model": self.model,
            "serial": self.serial,
            "counters": self.counters,
            "supplies": self.supplies,
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProbeError(Exception):
    """The device did not give an answer: `outcome` is unreachable, auth_failed or bad_answer."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


def parse_host(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPv6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 161
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 161


def _auth(target: Target):
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData
    from pysnmp.hlapi.v3arch.asyncio import auth as usm

    if target.v3 is None:
        return CommunityData(target.community or "public", mpModel=1)
    v3 = target.v3
    auth_protocols = {
        "MD5": usm.usmHMACMD5AuthProtocol,
        "SHA": usm.usmHMACSHAAuthProtocol,
        "SHA224": usm.usmHMAC128SHA224AuthProtocol,
        "SHA256": usm.usmHMAC192SHA256AuthProtocol,
        "SHA384": usm.usmHMAC256SHA384AuthProtocol,
        "SHA512": usm.usmHMAC384SHA512AuthProtocol,
    }
    priv_protocols = {
        "DES": usm.usmDESPrivProtocol,
        "3DES": usm.usm3DESEDEPrivProtocol,
        "AES": usm.usmAesCfb128Protocol,
        "AES192": usm.usmAesCfb192Protocol,
        "AES256": usm.usmAesCfb256Protocol,
    }
    if not v3.auth_key:
        return UsmUserData(v3.user)
    auth_protocol = auth_protocols[(v3.auth_protocol or "SHA").upper()]
    if not v3.priv_key:
        return UsmUserData(v3.user, authKey=v3.auth_key, authProtocol=auth_protocol)
    return UsmUserData(
        v3.user,
        authKey=v3.auth_key,
        privKey=v3.priv_key,
        authProtocol=auth_protocol,
        privProtocol=priv_protocols[(v3.priv_protocol or "AES").upper()],
    )


def _plain(value: Any) -> Any:
    """A pysnmp value as int or text; None for noSuchObject, noSuchInstance and endOfMibView."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1905

    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null)):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return ".".join(str(part) for part in value)
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.OctetString):
        data = value.asOctets()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return str(value)


class _Session:
    """One device's SNMP engine and transport for the length of a probe."""

    def __init__(self, target: Target) -> None:
        from pysnmp.hlapi.v3arch.asyncio import ContextData, SnmpEngine

        self.target = target
        self.engine = SnmpEngine()
        self.auth = _auth(target)
        self.context = ContextData()
        self.transport = None

    async def open(self) -> None:
        from pysnmp.hlapi.v3arch.asyncio import Udp6TransportTarget, UdpTransportTarget

        kind = Udp6TransportTarget if ":" in self.target.host else UdpTransportTarget
        try:
            self.transport = await kind.create(
                (self.target.host, self.target.port), timeout=self.target.timeout, retries=self.target.retries
            )
        except Exception as error:  # an unknown host name: pysnmp raises its own PySnmpError
            raise ProbeError("unreachable", _("The address %(host)s is unknown.", host=self.target.host)) from error

    def close(self) -> None:
        self.engine.close_dispatcher()

    async def get(self, oids: Iterable[str]) -> dict[str, Any]:
        from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType, get_cmd

        found: dict[str, Any] = {}
        oids = list(oids)
        for start in range(0, len(oids), 20):  # small PDUs: some devices refuse big ones (tooBig)
            chunk = [ObjectType(ObjectIdentity(oid)) for oid in oids[start : start + 20]]
            error, status, _index, var_binds = await get_cmd(
                self.engine, self.auth, self.transport, self.context, *chunk, lookupMib=False
            )
            if error is not None:
                raise self._failure(error)
            if status:  # a v1-style error for the whole PDU: ask one by one so the others still count
                for oid in oids[start : start + 20]:
                    found |= await self._get_one(oid)
                continue
            for name, value in var_binds:
                plain = _plain(value)
                if plain is not None:
                    found[str(name)] = plain
        return found

    async def _get_one(self, oid: str) -> dict[str, Any]:
        from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType, get_cmd

        error, status, _index, var_binds = await get_cmd(
            self.engine, self.auth, self.transport, self.context, ObjectType(ObjectIdentity(oid)), lookupMib=False
        )
        if error is not None:
            raise self._failure(error)
        if status:
            return {}
        return {str(name): _plain(value) for name, value in var_binds if _plain(value) is not None}

    async def walk(self, subtree: str) -> dict[str, Any]:
        from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType, bulk_walk_cmd

        found: dict[str, Any] = {}
        async for error, status, _index, var_binds in bulk_walk_cmd(
            self.engine,
            self.auth,
            self.transport,
            self.context,
            0,
            MAX_REPETITIONS,
            ObjectType(ObjectIdentity(subtree)),
            lexicographicMode=False,
            lookupMib=False,
        ):
            if error is not None:
                raise self._failure(error)
            if status:
                break
            for name, value in var_binds:
                plain = _plain(value)
                if plain is not None:
                    found[str(name)] = plain
            if len(found) >= MAX_WALK_ROWS:
                break
        return found

    def _failure(self, error: Any) -> ProbeError:
        from pysnmp.proto import errind

        auth_errors = (
            errind.UnknownUserName,
            errind.WrongDigest,
            errind.DecryptionError,
            errind.UnknownSecurityName,
            errind.UnsupportedSecurityLevel,
            errind.AuthenticationError,
            errind.AuthenticationFailure,
            errind.UnknownCommunityName,
            errind.NotInTimeWindow,
        )
        if isinstance(error, auth_errors):
            return ProbeError("auth_failed", _("The device refused the SNMPv3 credentials (%(error)s).", error=error))
        if isinstance(error, errind.RequestTimedOut):
            return ProbeError("unreachable", _("No answer from %(host)s.", host=self._where()))
        return ProbeError(
            "unreachable", _("No usable answer from %(host)s (%(error)s).", host=self._where(), error=error)
        )

    def _where(self) -> str:
        return f"{self.target.host}:{self.target.port}"


async def _answers_snmp_v3(target: Target) -> bool:
    """Whether an SNMPv3 agent answers at the address (it reports an unknown user rather than keeping silent)."""
    from pysnmp.proto import errind

    probe_target = Target(target.host, target.port, v3=V3Credentials(DISCOVERY_USER), timeout=target.timeout, retries=0)
    session = _Session(probe_target)
    try:
        await session.open()
        await session.get([snmp_profiles.SYS_OBJECT_ID])
    except ProbeError as error:
        return error.outcome == "auth_failed"
    except errind.ErrorIndication:
        return False
    finally:
        session.close()
    return True


async def probe_async(target: Target) -> ProbeResult:
    """Ask one device; raise ProbeError when it does not answer or refuses the credentials."""
    session = _Session(target)
    try:
        await session.open()
        try:
            raw = await session.get(snmp_profiles.FIRST_OIDS)
        except ProbeError as error:
            # SNMPv2c has no "wrong community" answer: a device just keeps silent. One that answers SNMPv3 is there.
            if error.outcome == "unreachable" and target.v3 is None and await _answers_snmp_v3(target):
                raise ProbeError(
                    "auth_failed",
                    _("The device at %(host)s answers SNMP but not to this community.", host=session._where()),
                ) from None
            raise
        if not raw:
            raise ProbeError("bad_answer", _("The device answered without any of the standard values."))
        profile = snmp_profiles.profile_for(raw.get(snmp_profiles.SYS_OBJECT_ID))
        if profile is not None:
            raw |= await session.get(profile.oids())
            for subtree in profile.subtrees():
                raw |= await session.walk(subtree)
        for subtree in snmp_profiles.STANDARD_SUBTREES:
            raw |= await session.walk(subtree)
    finally:
        session.close()
    meaning = snmp_profiles.interpret(raw)
    return ProbeResult(
        make=meaning.make,
        model=meaning.model,
        serial=meaning.serial,
        counters=meaning.counters,
        supplies=meaning.supplies,
        sys_object_id=raw.get(snmp_profiles.SYS_OBJECT_ID),
        sys_descr=raw.get(snmp_profiles.SYS_DESCR),
        profile=meaning.profile,
        notes=meaning.notes,
        raw=raw,
    )


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end from synchronous code, also where an event loop already runs in this thread (a
    caller inside async code, or Playwright's sync API in the tests): then in a thread of its own, with this
    thread's context (the app context, so messages are still in the reader's language)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def probe(
    host: str,
    port: int = 161,
    *,
    community: str | None = None,
    v3: V3Credentials | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> ProbeResult:
    """Probe one device now (see `probe_async`)."""
    return run_coroutine(probe_async(Target(host, port, community, v3, timeout, retries)))


async def probe_many(targets: list[Target], concurrency: int) -> list[ProbeResult | ProbeError]:
    """Probe every target, at most `concurrency` at a time; each gives its result or its ProbeError, in order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(target: Target) -> ProbeResult | ProbeError:
        async with gate:
            try:
                return await asyncio.wait_for(probe_async(target), target.deadline)
            except ProbeError as error:
                return error
            except TimeoutError:
                return ProbeError(
                    "unreachable",
                    _(
                        "The device did not finish answering within %(seconds)s seconds.",
                        seconds=labels.number(target.deadline),
                    ),
                )
            except Exception as error:  # a broken answer must not stop the other devices' polls
                return ProbeError("bad_answer", _("The device's answer could not be read (%(error)s).", error=error))

    return list(await asyncio.gather(*(one(target) for target in targets)))


# --- the configured devices ---------------------------------------------------------------------------------------


def seal_secret(value: str | None) -> str | None:
    return crypto.seal(value, PURPOSE) if value else None


def unseal_secret(value: str | None) -> str | None:
    return crypto.unseal(value, PURPOSE) if value else None


def save_device(snmp_device: SnmpDevice | None, data: dict[str, Any]) -> SnmpDevice:
    """Create (`snmp_device` None) or change a device's SNMP settings; raise ValidationError naming each bad field.

    Secrets (community, v3 keys) are sealed; an empty one keeps the stored secret. The caller commits.
    """
    from core.models import Partner
    from modules.rentals.models import Device

    check = Checker()
    device = None
    device_id = data.get("device_id")
    if snmp_device is not None:
        device = snmp_device.device
    elif not isinstance(device_id, int) or (device := db.session.get(Device, device_id)) is None:
        check.fail("device_id", _("Choose a device."))
    elif db.session.scalar(sa.select(SnmpDevice.id).where(SnmpDevice.device_id == device_id)) is not None:
        check.fail("device_id", _("Device %(serial)s already has its SNMP settings.", serial=device.serial))
    host = check.text("host", data.get("host"), 200)
    if device is not None and not host and not device.ip_address:
        check.fail("host", _("Give the address: device %(serial)s has no IP address on file.", serial=device.serial))
    port = check.integer("port", data.get("port", 161), 1, 65535)
    version = check.choice("version", data.get("version") or "2c", ("2c", "3"))
    community = check.text("community", data.get("community"), 100)
    v3_user = check.text("v3_user", data.get("v3_user"), 100)
    auth_protocol = check.choice("v3_auth_protocol", data.get("v3_auth_protocol") or "SHA", AUTH_PROTOCOLS)
    priv_protocol = check.choice("v3_priv_protocol", data.get("v3_priv_protocol") or "AES", PRIV_PROTOCOLS)
    auth_key = data.get("v3_auth_key") or None
    priv_key = data.get("v3_priv_key") or None
    for name, key in (("v3_auth_key", auth_key), ("v3_priv_key", priv_key)):
        if key is not None and not 8 <= len(key) <= 100:
            check.fail(name, _("An SNMPv3 key has 8 to 100 characters."))
    stored = snmp_device or SnmpDevice()
    if version == "2c" and not community and not stored.community_sealed:
        check.fail("community", _("Give the SNMP community (often public)."))
    if version == "3":
        if not v3_user:
            check.fail("v3_user", _("Give the SNMPv3 user."))
        if (priv_key or stored.v3_priv_key_sealed) and not (auth_key or stored.v3_auth_key_sealed):
            check.fail("v3_auth_key", _("Encryption needs an authentication key too."))
    agent_customer_id = data.get("agent_customer_id") or None
    if agent_customer_id is not None:
        customer = db.session.get(Partner, agent_customer_id)
        if customer is None:
            check.fail("agent_customer_id", _("Choose a customer."))
        elif device is not None and device.customer_id != customer.id:
            # The agent gets the device's credentials and polls it on the customer's network: only a device there.
            check.fail(
                "agent_customer_id",
                _(
                    "Device %(serial)s is not at %(customer)s's site: only its own devices go to a customer's agent.",
                    serial=device.serial,
                    customer=customer.name,
                ),
            )
    check.raise_if_any()
    if snmp_device is None:
        snmp_device = stored
        snmp_device.device_id = device.id
        db.session.add(snmp_device)
    snmp_device.host = host or None
    snmp_device.port = port
    snmp_device.version = version
    snmp_device.v3_user = v3_user if version == "3" else None
    snmp_device.v3_auth_protocol = auth_protocol if version == "3" else None
    snmp_device.v3_priv_protocol = priv_protocol if version == "3" else None
    if community:
        snmp_device.community_sealed = seal_secret(community)
    if auth_key:
        snmp_device.v3_auth_key_sealed = seal_secret(auth_key)
    if priv_key:
        snmp_device.v3_priv_key_sealed = seal_secret(priv_key)
    # Only the secrets of the version in use are kept: a forgotten community must not reach an agent, nor come back.
    if version == "3":
        snmp_device.community_sealed = None
    else:
        snmp_device.v3_auth_key_sealed = snmp_device.v3_priv_key_sealed = None
    snmp_device.active = bool(data.get("active", True))
    snmp_device.agent_customer_id = agent_customer_id
    db.session.flush()
    return snmp_device


def settings_of(snmp_device: SnmpDevice) -> dict[str, Any]:
    """How to ask a configured device, its secrets unsealed: only those of its SNMP version. The server's polls
    (`target_for`) and the on-site agent's device list (api.py) both read them here. Raises ProbeError auth_failed
    when a stored secret no longer opens (SECRET_KEY changed): the poll says so instead of failing."""
    try:
        community = unseal_secret(snmp_device.community_sealed) if snmp_device.version == "2c" else None
        auth_key = unseal_secret(snmp_device.v3_auth_key_sealed) if snmp_device.version == "3" else None
        priv_key = unseal_secret(snmp_device.v3_priv_key_sealed) if snmp_device.version == "3" else None
    except crypto.SealBroken:
        raise ProbeError(
            "auth_failed", _("The stored SNMP credentials cannot be read any more: enter them again.")
        ) from None
    settings: dict[str, Any] = {
        "device_id": snmp_device.device_id,
        "host": snmp_device.host or snmp_device.device.ip_address,
        "port": snmp_device.port,
        "version": snmp_device.version,
        "community": community,
    }
    if snmp_device.version == "3":
        settings |= {
            "v3_user": snmp_device.v3_user,
            "v3_auth_protocol": snmp_device.v3_auth_protocol,
            "v3_auth_key": auth_key,
            "v3_priv_protocol": snmp_device.v3_priv_protocol,
            "v3_priv_key": priv_key,
        }
    return settings


def target_of(
    settings: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    deadline: float | None = DEFAULT_DEADLINE,
) -> Target:
    """The Target for a device's settings (`settings_of`, or a row of the agent API's device list)."""
    v3 = None
    if settings.get("version") == "3":
        v3 = V3Credentials(
            user=settings.get("v3_user") or "",
            auth_key=settings.get("v3_auth_key"),
            auth_protocol=settings.get("v3_auth_protocol") or "SHA",
            priv_key=settings.get("v3_priv_key"),
            priv_protocol=settings.get("v3_priv_protocol") or "AES",
        )
    return Target(
        host=settings["host"],
        port=settings["port"],
        community=settings.get("community") if v3 is None else None,
        v3=v3,
        timeout=timeout,
        retries=retries,
        key=settings["device_id"],
        deadline=deadline,
    )


def target_for(snmp_device: SnmpDevice) -> Target | None:
    """How the server reaches a configured device (its own host or the device's IP address); None without an
    address. Raises ProbeError when its stored credentials cannot be read."""
    settings = settings_of(snmp_device)
    if not settings["host"]:
        return None
    return target_of(
        settings,
        timeout=float(get_setting("metering_channels.snmp_timeout", DEFAULT_TIMEOUT)),
        retries=int(get_setting("metering_channels.snmp_retries", DEFAULT_RETRIES)),
        deadline=float(get_setting("metering_channels.snmp_deadline", DEFAULT_DEADLINE)),
    )


def _same_serial(on_file: str, answered: str | None) -> bool:
    def norm(text: str) -> str:
        return "".join(text.split()).upper()

    return answered is not None and norm(on_file) == norm(answered)


def note_text(note: Note) -> str:
    """A note of `snmp_profiles.interpret` in the reader's language, with the meter's and the colour's names."""
    from modules.metering.admin import COLOUR_LABELS
    from modules.metering.history import meter_label

    meter = meter_label(note.meter) if note.meter and note.meter != TOTAL else _("page count")
    colour = str(COLOUR_LABELS.get(note.colour, note.colour)) if note.colour else ""
    texts = {
        "partial": lambda: _("%(meter)s: the device gave only part of its vendor counters.", meter=meter),
        "negative": lambda: _("%(meter)s: the device gave a negative counter.", meter=meter),
        "not_adding_up": lambda: _("%(meter)s: the device's counters do not add up (a negative total).", meter=meter),
        "some_remaining": lambda: _("%(colour)s toner: the device says only that some remains.", colour=colour),
        "level_unknown": lambda: _("%(colour)s toner: the device does not know its level.", colour=colour),
        "life_negative": lambda: _("The device's page count (prtMarkerLifeCount) is negative."),
    }
    return texts[note.code]() if note.code in texts else note.code


def _counters_text(counters: dict[str, int]) -> str:
    from modules.metering.history import meter_label

    return ", ".join(
        f"{meter_label(meter) if meter != TOTAL else _('page count')} {labels.number(value)}"
        for meter, value in sorted(counters.items())
    )


def _meter_counters(device, answered: dict[str, int]) -> dict[str, int]:
    """The answered counters the device's meters have. A page count that does not tell black and white from
    colour (`total`) is the `bw` of a black-only model only: on a colour model it would bill colour as black."""
    meters = device.model.meter_codes
    answered = dict(answered)
    if TOTAL in answered and TOTAL not in meters and "bw" not in answered and not device.model.color:
        answered["bw"] = answered.pop(TOTAL)
    return {meter: value for meter, value in answered.items() if meter in meters}


def record_answer(
    snmp_device: SnmpDevice,
    answer: ProbeResult | ProbeError,
    *,
    taken_at: dt.datetime | None = None,
    customer_id: int | None = None,
    entered_by: int | None = None,
) -> SnmpPoll:
    """Store one poll's answer for a configured device: a reading through `record_reading` when it is the device on
    file with usable counters, else only the poll's outcome and why. Never raises for the device's answer.
    `entered_by`: the user whose API token sent it (the on-site agent)."""
    from modules.metering.history import meter_label

    device = snmp_device.device
    now = utcnow()
    poll = SnmpPoll(device_id=device.id, at=now)
    if isinstance(answer, ProbeError):
        poll.outcome, poll.message = answer.outcome, answer.message
    else:
        notes = [note_text(note) for note in answer.notes]
        poll.raw = {
            "summary": answer.summary(),
            "profile": answer.profile,
            "notes": [note.as_dict() for note in answer.notes],
            "raw": answer.raw,
        }
        counters = _meter_counters(device, answer.counters)
        if not _same_serial(device.serial, answer.serial):
            poll.outcome = "serial_mismatch"
            poll.message = _(
                "The device at this address has serial %(answered)s, not %(serial)s: not read into this device.",
                answered=answer.serial or _("(none)"),
                serial=device.serial,
            )
        elif not counters:
            poll.outcome = "bad_answer"
            poll.message = _(
                "The device gave no counter for its meters (%(meters)s; it gave: %(given)s).",
                meters=", ".join(meter_label(meter) for meter in device.model.meter_codes),
                given=_counters_text(answer.counters) or _("none"),
            )
            if notes:
                poll.message += " " + " ".join(notes)
        else:
            poll.outcome, poll.message, poll.reading_id = _store_reading(
                device, taken_at or now, counters, answer.supplies, customer_id, entered_by
            )
            if notes:
                poll.message = " ".join(filter(None, [poll.message, *notes]))
    state = {"last_polled_at": now, "last_outcome": poll.outcome}
    if poll.outcome in ("read", "pending_review"):
        state |= {"last_ok_at": now, "last_error": None}
    else:
        state["last_error"] = poll.message
    set_poll_state(snmp_device, **state)
    db.session.add(poll)
    db.session.flush()
    return poll


def _store_reading(
    device,
    taken_at: dt.datetime,
    counters: dict[str, int],
    supplies: dict[str, int],
    customer_id: int | None,
    entered_by: int | None = None,
) -> tuple[str, str, int | None]:
    """record_reading in a savepoint: a refusal (or any failure) rolls back only the reading; the poll row is still
    written."""
    from modules.metering.readings import record_reading

    colours = SUPPLY_COLOURS if device.model.color else ("black",)
    supplies = {colour: value for colour, value in supplies.items() if colour in colours}
    savepoint = db.session.begin_nested()
    try:
        recorded = record_reading(
            device.id,
            taken_at,
            counters,
            supplies or None,
            source="snmp",
            entered_by=entered_by,
            customer_id=customer_id,
        )
        reading = recorded.reading
        savepoint.commit()
    except ValidationError as error:
        savepoint.rollback()
        return "refused", " ".join(str(message) for message in error.errors.values()), None
    except Exception as error:
        log.exception("SNMP reading of device %s could not be stored", device.serial)
        if savepoint.is_active:
            savepoint.rollback()
        return "refused", _("The reading could not be stored (%(error)s).", error=error), None
    if reading.status == "pending_review":
        return "pending_review", reading.reason or _("The reading waits for review."), reading.id
    return "read", _("Read %(counters)s.", counters=_counters_text(counters)), reading.id


def due_devices(ids: Iterable[int] | None = None) -> list[SnmpDevice]:
    """The active devices the server polls itself (not those of an on-site agent), or exactly `ids` (device ids)."""
    query = sa.select(SnmpDevice).where(SnmpDevice.active.is_(True), SnmpDevice.agent_customer_id.is_(None))
    if ids is not None:
        query = sa.select(SnmpDevice).where(SnmpDevice.device_id.in_(list(ids)))
    return list(db.session.scalars(query.order_by(SnmpDevice.id)))


def poll_devices(ids: Iterable[int] | None = None, *, commit: bool = False) -> list[SnmpPoll]:
    """Poll the server's devices (or the devices `ids`) now, concurrently; record each answer. With `commit` each
    device's poll is committed on its own (the periodic job: one device failing to store keeps the others' polls),
    else the caller commits."""
    devices = due_devices(ids)
    targets: list[tuple[int, Target]] = []
    early: list[tuple[int, ProbeError]] = []
    for snmp_device in devices:
        try:
            target = target_for(snmp_device)
        except ProbeError as error:  # unreadable credentials: this device's poll says so, the others go on
            early.append((snmp_device.id, error))
            continue
        if target is None:
            early.append((snmp_device.id, ProbeError("unreachable", _("The device has no IP address on file."))))
        else:
            targets.append((snmp_device.id, target))
    concurrency = int(get_setting("metering_channels.snmp_concurrency", DEFAULT_CONCURRENCY))
    answers = run_coroutine(probe_many([target for _id, target in targets], concurrency)) if targets else []
    ids_answers = early + [(row_id, answer) for (row_id, _target), answer in zip(targets, answers, strict=True)]
    polls = []
    for row_id, answer in ids_answers:
        poll = _record_one(row_id, answer, commit)
        if poll is not None:
            polls.append(poll)
    return polls


def _record_one(snmp_device_id: int, answer: ProbeResult | ProbeError, commit: bool) -> SnmpPoll | None:
    """Record one device's answer; anything failing is logged and, when committing, rolled back for this device."""
    try:
        poll = record_answer(db.session.get(SnmpDevice, snmp_device_id), answer)
        if commit:
            db.session.commit()
        return poll
    except Exception:
        log.exception("SNMP poll of device row %s could not be recorded", snmp_device_id)
        if not commit:
            raise
        db.session.rollback()
        return None


# --- the on-site agent --------------------------------------------------------------------------------------------


class AgentError(Exception):
    """The dealer's API could not be reached or refused the agent (its message says which)."""


def _api(method: str, url: str, token: str, body: Any = None, timeout: float = 30) -> Any:
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:500]
        raise AgentError(f"{method} {url}: HTTP {error.code} {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise AgentError(f"{method} {url}: {error}") from None


def run_agent(
    api_url: str,
    token: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[dict[str, Any]]:
    """One round of the on-site agent: list this customer's devices from the dealer's API, poll them here, send each
    answer; returns the polls as the server stored them. Needs no database: only the API URL and a token."""
    base = api_url.rstrip("/")
    rows = _api("GET", f"{base}/snmp-agent/devices", token)
    rows = [row for row in rows if row.get("host")]
    targets = [target_of(row, timeout, retries) for row in rows]
    answers = run_coroutine(probe_many(targets, concurrency)) if targets else []
    stored = []
    for target, answer in zip(targets, answers, strict=True):
        body: dict[str, Any] = {"device_id": target.key, "taken_at": utcnow().isoformat()}
        if isinstance(answer, ProbeError):
            body |= {"outcome": answer.outcome, "message": answer.message}
        else:
            summary = answer.summary()
            notes = [note.as_dict() for note in answer.notes]
            body |= {"outcome": "answered", "answer": summary | {"profile": answer.profile, "notes": notes}}
        stored.append(_api("POST", f"{base}/snmp-agent/polls", token, body))
    return stored
