"""The wire format: frames over real sockets, envelopes, the message schemas, and docs/device-protocol.md (every
example validates, every request field is documented, its Python snippets work against the real code)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import fastjsonschema
import pytest

from modules.device_accounting.models import FUNCTIONS, JOB_STATUSES, PAPER_SIZES
from modules.device_collector import protocol
from modules.device_collector.protocol import (
    ERROR_CODES,
    MAX_BATCH,
    MAX_FRAME,
    ProtocolError,
    encode_frame,
    error_reply,
    parse_envelope,
    read_frame,
    reply,
    validate_reply,
    validate_request,
)
from modules.device_collector.tests.collector_support import run_async

DOC = Path(__file__).resolve().parents[3] / "docs" / "device-protocol.md"
EXAMPLE = re.compile(r"<!-- example: ([A-Z_]+) (request|reply) -->\s*```json\n(.*?)```", re.S)
SNIPPET = re.compile(r"<!-- snippet: ([a-z_]+) -->\s*```python\n(.*?)```", re.S)


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def snippet(name: str) -> dict:
    code = dict(SNIPPET.findall(doc_text()))[name]
    namespace: dict = {}
    exec(compile(code, f"device-protocol.md:{name}", "exec"), namespace)  # our own document, not input
    return namespace


def job(seq: int, **fields) -> dict:
    return {
        "device_seq": seq,
        "user_id": 41,
        "cost_center_id": None,
        "function": "print",
        "sides_bw": 37,
        "sides_color": 5,
        "paper_size": "A4",
        "duplex": True,
        "status": "done",
        "document_name": "offer.pdf",
        "started_at": "2025-03-14T09:27:02+01:00",
        "ended_at": "2025-03-14T09:28:15+01:00",
        **fields,
    }


# --- framing over a real connection ------------------------------------------------------------------------------


class Peer:
    """An asyncio server whose first connection is read with read_frame; the test writes raw bytes to it."""

    def __init__(self, idle_timeout: float = 2.0, frame_timeout: float = 1.0, max_frame: int = MAX_FRAME):
        self.limits = (idle_timeout, frame_timeout, max_frame)

    async def __aenter__(self) -> Peer:
        self.connected: asyncio.Future = asyncio.get_running_loop().create_future()
        self.server = await asyncio.start_server(lambda r, w: self.connected.set_result((r, w)), "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        _reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.reader, self.server_writer = await self.connected
        return self

    async def __aexit__(self, *exc) -> None:
        self.writer.close()
        self.server_writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self):
        return await read_frame(self.reader, *self.limits)


def run(coro):
    return run_async(coro)


def test_frames_round_trip_and_the_connection_goes_on_after_a_malformed_one():
    async def scenario():
        async with Peer() as peer:
            message = {"v": 1, "id": "a-1", "type": "HEARTBEAT", "body": {"text": "è ✓"}}
            frame = encode_frame(message)
            assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
            await peer.send(frame + encode_frame({"v": 1, "id": 2, "type": "HELLO"}))
            assert await peer.read() == message
            assert (await peer.read())["id"] == 2
            for body in (b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", b'{"x": NaN}', b"[" * 100_000):
                await peer.send(struct.pack(">I", len(body)) + body)
                with pytest.raises(ProtocolError) as refused:
                    await peer.read()
                assert refused.value.code == "malformed_frame" and not refused.value.closes
            await peer.send(frame)
            assert await peer.read() == message  # the lengths were honoured: still in step
            peer.writer.close()
            assert await peer.read() is None  # a clean end between frames

    run(scenario())


def test_a_length_of_zero_or_above_the_maximum_is_refused_before_the_body_arrives():
    async def scenario():
        for length in (0, MAX_FRAME + 1, 2**32 - 1):
            async with Peer() as peer:
                await peer.send(struct.pack(">I", length))  # and no body at all: nothing waits for it
                started = time.monotonic()
                with pytest.raises(ProtocolError) as refused:
                    await peer.read()
                assert refused.value.code == "frame_too_large" and refused.value.closes
                assert time.monotonic() - started < 0.5
        async with Peer(max_frame=10) as peer:
            await peer.send(encode_frame({"v": 1, "id": 1, "type": "HEARTBEAT"}))
            with pytest.raises(ProtocolError, match="frame_too_large"):
                await peer.read()

    run(scenario())
    with pytest.raises(ValueError):
        encode_frame({"x": "a" * MAX_FRAME})


def test_silence_and_trickled_frames_time_out():
    async def scenario():
        async with Peer(idle_timeout=0.3, frame_timeout=5) as peer:
            started = time.monotonic()
            with pytest.raises(ProtocolError) as refused:
                await peer.read()
            assert refused.value.code == "timeout" and refused.value.closes
            assert 0.25 < time.monotonic() - started < 1.5
        async with Peer(idle_timeout=5, frame_timeout=0.5) as peer:
            frame = encode_frame({"v": 1, "id": 1, "type": "HEARTBEAT", "body": {}})

            async def slowloris():
                for byte in frame:
                    await peer.send(bytes([byte]))
                    await asyncio.sleep(0.1)

            trickle = asyncio.create_task(slowloris())
            started = time.monotonic()
            with pytest.raises(ProtocolError, match="timeout"):
                await peer.read()
            assert time.monotonic() - started < 1.5  # the frame timeout counts from the first byte, not per byte
            trickle.cancel()

    run(scenario())


def test_a_frame_cut_short_is_an_incomplete_read():
    async def scenario():
        async with Peer() as peer:
            await peer.send(encode_frame({"v": 1, "id": 1, "type": "HEARTBEAT"})[:9])
            peer.writer.close()
            with pytest.raises(asyncio.IncompleteReadError):
                await peer.read()

    run(scenario())


# --- envelope ----------------------------------------------------------------------------------------------------


def test_envelopes_are_parsed_and_bad_ones_refused_naming_the_key():
    assert parse_envelope({"v": 1, "id": 7, "type": "TXN", "body": {"a": 1}}) == (7, "TXN", {"a": 1})
    assert parse_envelope({"v": 1, "id": "x" * 64, "type": "HEARTBEAT", "extra": True}) == ("x" * 64, "HEARTBEAT", {})
    cases = [
        ({"v": 1, "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": "", "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": "x" * 65, "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": True, "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": -1, "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": 2**53 + 1, "type": "HELLO"}, "malformed_frame", "id"),
        ({"v": 1, "id": 1.5, "type": "HELLO"}, "malformed_frame", "id"),
        ({"id": 1, "type": "HELLO"}, "malformed_frame", "v"),
        ({"v": "1", "id": 1, "type": "HELLO"}, "malformed_frame", "v"),
        ({"v": 1, "id": 1, "type": "hello"}, "malformed_frame", "type"),
        ({"v": 1, "id": 1, "type": 5}, "malformed_frame", "type"),
        ({"v": 1, "id": 1, "type": "HELLO", "body": []}, "malformed_frame", "body"),
        ({"v": 2, "id": 1, "type": "HELLO"}, "unsupported_version", None),
    ]
    for envelope, code, key in cases:
        with pytest.raises(ProtocolError) as refused:
            parse_envelope(envelope)
        assert refused.value.code == code, envelope
        assert (key in refused.value.details.get("fields", {})) if key else True
        assert protocol.envelope_id(envelope) == (envelope.get("id") if key != "id" else None)
    with pytest.raises(ProtocolError) as refused:
        parse_envelope({"v": 2, "id": 1, "type": "HELLO"})
    assert refused.value.body()["supported_versions"] == [1]


def test_replies_and_error_replies_match_the_schemas():
    ok = reply(3, "HEARTBEAT", {"server_time": "2025-03-14T09:40:00+01:00"})
    assert ok == {
        "v": 1,
        "id": 3,
        "type": "HEARTBEAT",
        "ok": True,
        "body": {"server_time": "2025-03-14T09:40:00+01:00"},
    }
    protocol.ENVELOPE_VALIDATOR(ok)
    error = error_reply(None, ProtocolError("try_later", "Later.", retry_after=5))
    assert error == {
        "v": 1,
        "id": None,
        "type": "ERROR",
        "ok": False,
        "body": {"code": "try_later", "message": "Later.", "retry_after": 5},
    }
    protocol.ENVELOPE_VALIDATOR(error)
    validate_reply("ERROR", error["body"])
    assert json.loads(encode_frame(error)[4:]) == error


# --- message schemas ---------------------------------------------------------------------------------------------


def test_every_message_has_a_request_and_a_reply_schema():
    schemas = {path.name for path in protocol.SCHEMAS_DIR.glob("*.json")}
    types = {"ENROL", "RENEW", "HELLO", "IDENTIFY", "AUTHORIZE", "TXN", "COUNTERS", "HEARTBEAT"}
    types |= {"HELD_JOBS", "RELEASE", "DELETE"}
    assert schemas == {f"{t}.{kind}.json" for t in types for kind in ("request", "reply")} | {
        "envelope.json",
        "error.json",
    }
    assert types == protocol.MESSAGE_TYPES
    for path in protocol.SCHEMAS_DIR.glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#", path.name
        fastjsonschema.compile(schema)


def test_the_schemas_agree_with_the_code():
    item = protocol.load_schema("TXN.request")["properties"]["transactions"]
    assert item["maxItems"] == MAX_BATCH
    properties = item["items"]["properties"]
    assert properties["function"]["enum"] == list(FUNCTIONS)
    assert properties["paper_size"]["enum"] == list(PAPER_SIZES)
    assert properties["status"]["enum"] == list(JOB_STATUSES)
    assert protocol.load_schema("AUTHORIZE.request")["properties"]["function"]["enum"] == list(FUNCTIONS)


def test_validation_names_the_failing_path():
    body = {"transactions": [job(i) for i in range(5)]}
    assert validate_request("TXN", body) is body
    cases = [
        ({"transactions": [job(0), job(1), job(2), job(3, sides_bw="2")]}, "transactions.3.sides_bw"),
        ({"transactions": [job(0), {k: v for k, v in job(1).items() if k != "duplex"}]}, "transactions.1.duplex"),
        ({"transactions": [job(0, sides_colour=1)]}, "transactions.0.sides_colour"),
        ({"transactions": [job(0, function="fold")]}, "transactions.0.function"),
        ({"transactions": [job(0, ended_at="14/03/2025 09:28")]}, "transactions.0.ended_at"),
        ({"transactions": [job(0, device_seq=-1)]}, "transactions.0.device_seq"),
        ({"transactions": [job(0, user_id=True)]}, "transactions.0.user_id"),
        ({"transactions": []}, "transactions"),
        ({"transactions": [job(i) for i in range(MAX_BATCH + 1)]}, "transactions"),
        ({}, "transactions"),
    ]
    for bad, path in cases:
        with pytest.raises(ProtocolError) as refused:
            validate_request("TXN", bad)
        assert refused.value.code == "invalid_message" and not refused.value.closes
        assert list(refused.value.details["fields"]) == [path], (path, refused.value.details)
    with pytest.raises(ProtocolError) as refused:
        validate_request("HELLO", {"protocol_version": 1, "serial": "E1", "firmware": "1", "capabilities": [3]})
    assert refused.value.details["fields"] == {"capabilities.0": "must be string"}
    with pytest.raises(ProtocolError) as refused:
        validate_request("COUNTERS", {"taken_at": "2025-03-14T07:00:00Z", "counters": {"bw": -1}})
    assert list(refused.value.details["fields"]) == ["counters.bw"]
    with pytest.raises(ProtocolError) as refused:
        validate_request("HEARTBEAT", {"anything": 1})
    assert refused.value.details["fields"] == {"anything": "unknown field"}
    with pytest.raises(ProtocolError) as refused:
        validate_request("FAX_ME", {})
    assert refused.value.code == "unknown_message"


def test_a_full_txn_frame_validates_in_a_few_milliseconds():
    body = {"transactions": [job(i) for i in range(MAX_BATCH)]}
    validate_request("TXN", body)
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        validate_request("TXN", body)
    per_frame = (time.perf_counter() - started) / rounds
    assert per_frame < 0.05, f"{per_frame * 1000:.1f} ms for {MAX_BATCH} transactions"


# --- the document ------------------------------------------------------------------------------------------------


def test_every_example_in_the_document_is_valid():
    examples = EXAMPLE.findall(doc_text())
    documented = {(type_, kind) for type_, kind, _text in examples}
    for type_ in protocol.MESSAGE_TYPES:
        assert (type_, "request") in documented and (type_, "reply") in documented, type_
    assert ("ERROR", "reply") in documented
    for type_, kind, text in examples:
        message = json.loads(text)
        protocol.ENVELOPE_VALIDATOR(message)
        if kind == "request":
            _request_id, parsed_type, body = parse_envelope(message)
            assert parsed_type == type_
            validate_request(type_, body)
        else:
            assert message["type"] == type_ and message["ok"] is (type_ != "ERROR")
            validate_reply(type_, message["body"])
            if type_ == "ERROR":
                assert message["body"]["code"] in ERROR_CODES


def test_the_document_covers_every_field_and_error_code():
    text = doc_text()
    for type_ in protocol.MESSAGE_TYPES:
        schema = protocol.load_schema(f"{type_}.request")
        properties = schema["properties"]
        if type_ == "TXN":
            properties = properties["transactions"]["items"]["properties"]
        for name in properties:
            assert f"| `{name}` |" in text, f"{type_}.{name} has no row in a fields table"
        assert f"schemas/{type_}.request.json" in text and f"schemas/{type_}.reply.json" in text
    table = text[text.index("| code | closes |") :]
    for code, closes in ERROR_CODES.items():
        row = re.search(rf"^\| `{code}` \| (yes|no) \|", table, re.M)
        assert row, f"error code {code} is not in the table"
        assert row.group(1) == ("yes" if closes else "no"), code
    assert f"{MAX_FRAME:,}" in text and str(MAX_BATCH) in text


def test_the_framing_snippet_speaks_to_read_frame():
    code = snippet("framing")
    device, server = socket.socketpair()
    with device, server:
        code["send_frame"](device, {"v": 1, "id": 1, "type": "HEARTBEAT", "body": {"note": "ü"}})
        server.sendall(encode_frame(reply(1, "HEARTBEAT", {"server_time": "2025-03-14T09:40:00+01:00"})))

        async def read_what_the_device_sent():
            reader, writer = await asyncio.open_connection(sock=server.dup())
            try:
                return await read_frame(reader, 1, 1)
            finally:
                writer.close()

        assert run(read_what_the_device_sent()) == {"v": 1, "id": 1, "type": "HEARTBEAT", "body": {"note": "ü"}}
        assert code["recv_frame"](device)["body"]["server_time"].startswith("2025-03-14")
        server.sendall(encode_frame(error_reply(2, ProtocolError("hello_required", "Send HELLO first."))))
        connection = code["Connection"](device)
        connection.next_id = 2
        with pytest.raises(code["DeviceError"]) as failed:
            connection.request("IDENTIFY", {"card": "1"})
        assert failed.value.code == "hello_required"


def test_the_enrolment_snippet_finds_the_ca_in_the_real_servers_chain(app):
    from core.db import db
    from modules.device_collector import pki

    with app.app_context():
        context = pki.server_ssl_context(["localhost"])
        ca_pem = pki.ca_certificate_pem()
        shown = pki.display_fingerprint(pki.fingerprint(ssl.PEM_cert_to_DER_cert(ca_pem)))
        db.session.commit()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(count: int) -> None:
        for _ in range(count):
            raw, _address = listener.accept()
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, args=(2,), daemon=True)
    thread.start()
    code = snippet("enrolment")
    with listener:
        assert code["fetch_ca"]("localhost", port, shown.lower().replace(":", " ")).strip() == ca_pem.strip()
        with pytest.raises(RuntimeError, match="wrong server"):
            code["fetch_ca"]("localhost", port, "00" * 32)
        thread.join(5)
