"""The wire protocol (docs/device-protocol.md): versions, limits, error codes, ProtocolError, the session of a
connected device, framing, envelopes and the message schemas (schemas/*.json)."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
HEADER_SIZE = 4  # unsigned 32-bit big-endian length of the body that follows
MAX_FRAME = 1_048_576  # bytes of one frame's body
MAX_BATCH = 1000  # transactions in one TXN frame

# Error codes of ERROR frames: stable, documented in docs/device-protocol.md. `closes`: the server closes after it.
ERROR_CODES: dict[str, bool] = {
    "malformed_frame": False,  # not UTF-8 JSON, not an object, or a bad envelope
    "frame_too_large": True,  # the length prefix is above MAX_FRAME (or zero)
    "unsupported_version": False,
    "unknown_message": False,
    "invalid_message": False,  # the body breaks the message's schema or the domain's checks (`fields`)
    "hello_required": False,  # the first message of an enrolled device's connection must be HELLO
    "identify_required": False,  # HELD_JOBS, RELEASE, DELETE: no print user identified on this connection
    "not_enrolled": True,  # no client certificate, or one this installation never issued
    "revoked": True,  # the device or its certificate is revoked
    "certificate_expired": True,
    "enrolment_refused": False,  # a wrong, used or expired enrolment code, or a bad CSR (`reason`)
    "try_later": False,  # the database cannot answer now (`retry_after` seconds); nothing was stored
    "too_many_connections": True,
    "timeout": True,  # silent for longer than the idle timeout, or a frame not finished in time
    "internal_error": False,
}


class ProtocolError(Exception):
    """An ERROR frame to send: `code` from ERROR_CODES, a human `message`, and optional details (`fields`: field
    path -> problem; `reason`; `retry_after`)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details = code, message, details

    @property
    def closes(self) -> bool:
        return ERROR_CODES[self.code]

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


@dataclass
class DeviceSession:
    """What the server knows about one connection: who is at the other end once the certificate is checked."""

    address: str  # peer "ip:port"
    certificate_fingerprint: str | None = None  # sha256 hex of the client certificate's DER, None without one
    collector_device_id: int | None = None  # CollectorDevice.id once the certificate is checked
    device_id: int | None = None  # rentals Device.id
    serial: str | None = None
    protocol_version: int | None = None  # set by HELLO
    hello_done: bool = False
    language: str | None = None  # the device's language from HELLO (for messages), e.g. "it"
    extra: dict[str, Any] = field(default_factory=dict)  # per-connection, never needed by another instance


# --- framing ------------------------------------------------------------------------------------------------------

ID_MAX_LENGTH = 64
ID_MAX_INTEGER = 2**53
TYPE_PATTERN = re.compile(r"[A-Z][A-Z_]{0,31}")
SCHEMAS_DIR = Path(__file__).with_name("schemas")


def encode_frame(msg: dict[str, Any]) -> bytes:
    """The frame of one message: 4-byte big-endian length, then compact UTF-8 JSON."""

    data = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if not 0 < len(data) <= MAX_FRAME:
        raise ValueError(f"a frame of {len(data)} bytes is above MAX_FRAME")
    return struct.pack(">I", len(data)) + data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_body(data: bytes) -> dict[str, Any]:
    """The object of a frame's body, or ProtocolError malformed_frame (not UTF-8, not JSON, not an object)."""

    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ProtocolError("malformed_frame", "The frame is not UTF-8.") from None
    except (ValueError, RecursionError):  # JSONDecodeError, NaN/Infinity, huge integers, absurd nesting
        raise ProtocolError("malformed_frame", "The frame is not JSON.") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed_frame", "The frame must hold one JSON object.")
    return obj


async def read_frame(
    reader: asyncio.StreamReader, idle_timeout: float, frame_timeout: float, max_frame: int = MAX_FRAME
) -> dict[str, Any] | None:
    """The next message, or None when the peer closed cleanly between frames: read_frame_bytes, then decode_body
    (which raises malformed_frame for an undecodable body; its length was honoured, so the connection can go on)."""
    data = await read_frame_bytes(reader, idle_timeout, frame_timeout, max_frame)
    return None if data is None else decode_body(data)


async def read_frame_bytes(
    reader: asyncio.StreamReader, idle_timeout: float, frame_timeout: float, max_frame: int = MAX_FRAME
) -> bytes | None:
    """The next frame's body, undecoded (the server decodes a big one in a worker thread, off the event loop), or
    None when the peer closed cleanly between frames.

    Waits at most `idle_timeout` for the first byte of the header, then at most `frame_timeout` for the rest of the
    header and the whole body (a client trickling bytes times out). A length of 0 or above `max_frame` raises
    frame_too_large before any of the body is read; silence raises timeout. EOF inside a frame raises
    asyncio.IncompleteReadError (the peer is gone: there is no one to answer).
    """

    try:
        first = await asyncio.wait_for(reader.read(1), idle_timeout)
    except TimeoutError:
        raise ProtocolError("timeout", "No frame within the idle timeout.") from None
    if not first:
        return None
    try:
        async with asyncio.timeout(frame_timeout):
            header = first + await reader.readexactly(HEADER_SIZE - 1)
            (length,) = struct.unpack(">I", header)
            if not 0 < length <= max_frame:
                raise ProtocolError(
                    "frame_too_large", f"A frame's length must be 1 to {max_frame} bytes, not {length}."
                )
            return await reader.readexactly(length)
    except TimeoutError:
        raise ProtocolError("timeout", "The frame was not finished within the frame timeout.") from None


# --- envelope -----------------------------------------------------------------------------------------------------


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return 1 <= len(value) <= ID_MAX_LENGTH
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= ID_MAX_INTEGER


def envelope_id(obj: Any) -> str | int | None:
    """The request id to answer an envelope that failed parse_envelope with: its id when valid, else None."""

    value = obj.get("id") if isinstance(obj, dict) else None
    return value if _valid_id(value) else None


def parse_envelope(obj: dict[str, Any]) -> tuple[str | int, str, dict[str, Any]]:
    """(id, type, body) of a request; ProtocolError malformed_frame or unsupported_version. Other keys are ignored
    and a missing body is {}."""

    if not isinstance(obj, dict):
        raise ProtocolError("malformed_frame", "The frame must hold one JSON object.")
    request_id = obj.get("id")
    if not _valid_id(request_id):
        raise ProtocolError(
            "malformed_frame",
            f"The id must be a text of 1 to {ID_MAX_LENGTH} characters or an integer from 0 to 2^53.",
            fields={"id": "invalid"},
        )
    version = obj.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError("malformed_frame", 'The envelope needs "v", an integer.', fields={"v": "invalid"})
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            "unsupported_version",
            f"Envelope version {version} is not supported.",
            supported_versions=sorted(SUPPORTED_VERSIONS),
        )
    type_ = obj.get("type")
    if not isinstance(type_, str) or not TYPE_PATTERN.fullmatch(type_):
        raise ProtocolError(
            "malformed_frame",
            'The type must be an upper-case message name such as "HELLO".',
            fields={"type": "invalid"},
        )
    body = obj.get("body", {})
    if not isinstance(body, dict):
        raise ProtocolError("malformed_frame", "The body must be a JSON object.", fields={"body": "invalid"})
    return request_id, type_, body


def reply(request_id: str | int | None, type_: str, body: dict[str, Any]) -> dict[str, Any]:
    """The success reply to a request."""

    return {"v": PROTOCOL_VERSION, "id": request_id, "type": type_, "ok": True, "body": body}


def error_reply(request_id: str | int | None, error: ProtocolError) -> dict[str, Any]:
    """The ERROR reply carrying `error` (id None when the request's id could not be read)."""

    return {"v": PROTOCOL_VERSION, "id": request_id, "type": "ERROR", "ok": False, "body": error.body()}


# --- message schemas ----------------------------------------------------------------------------------------------


def load_schema(name: str) -> dict[str, Any]:
    """schemas/<name>.json, e.g. "TXN.request"."""

    return json.loads((SCHEMAS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _compile(kind: str) -> dict[str, Callable[[Any], Any]]:
    return {
        path.name.split(".")[0]: fastjsonschema.compile(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(SCHEMAS_DIR.glob(f"*.{kind}.json"))
    }


REQUEST_VALIDATORS = _compile("request")  # compiled once: a TXN of MAX_BATCH items validates in a few ms
REPLY_VALIDATORS = _compile("reply")
ERROR_VALIDATOR = fastjsonschema.compile(load_schema("error"))
ENVELOPE_VALIDATOR = fastjsonschema.compile(load_schema("envelope"))
MESSAGE_TYPES = frozenset(REQUEST_VALIDATORS)


def _failing_path(error: fastjsonschema.JsonSchemaValueException) -> str:
    parts = [str(part) for part in (error.path or [])[1:]]  # path[0] is "data"
    value = error.value
    if error.rule == "required" and isinstance(value, dict):
        missing = [name for name in error.rule_definition if name not in value]
        parts += missing[:1]
    elif error.rule == "additionalProperties" and isinstance(value, dict):
        known = set((error.definition or {}).get("properties", {}))
        extra = sorted(str(name) for name in value if name not in known)
        parts += extra[:1]
    return ".".join(parts) or "body"


def _problem(error: fastjsonschema.JsonSchemaValueException) -> str:
    if error.rule == "required":
        return "required"
    if error.rule == "additionalProperties":
        return "unknown field"
    name = error.name or "data"
    text = error.message
    return text[len(name) :].strip() if text.startswith(name) else text


def validate_request(type_: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` when it matches schemas/<type_>.request.json; else ProtocolError unknown_message, or invalid_message
    whose `fields` names the first failing path ("transactions.3.sides_bw") and its problem."""

    validator = REQUEST_VALIDATORS.get(type_)
    if validator is None:
        raise ProtocolError("unknown_message", f"Unknown message type {type_[:40]!r}.")
    try:
        validator(body)
    except fastjsonschema.JsonSchemaValueException as error:
        raise ProtocolError(
            "invalid_message",
            f"The {type_} message does not match its schema.",
            fields={_failing_path(error): _problem(error)},
        ) from None
    return body


def validate_reply(type_: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` when it matches schemas/<type_>.reply.json (or schemas/error.json for ERROR); raises
    fastjsonschema.JsonSchemaValueException otherwise. For tests and device authors."""

    validator = ERROR_VALIDATOR if type_ == "ERROR" else REPLY_VALIDATORS[type_]
    validator(body)
    return body
