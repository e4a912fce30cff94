"""Malformed, slow, silent and flooding clients get the documented ERROR (or are dropped) while a well-behaved device
on the same collector keeps being served; the logs name the device, never a PIN, a password or a document name."""

from __future__ import annotations

import logging
import os
import socket
import struct
import time

import pytest

from modules.device_collector.protocol import MAX_FRAME
from modules.device_collector.tests.collector_support import (
    closed,
    connect_device,
    enrolled_office,
    frame_bytes,
    raw_tcp,
    raw_tls,
    recv_frame,
    request,
    running_collector,
    send_frame,
)

FLOOD_SOURCE = "127.0.0.2"  # another peer address on the loopback interface


@pytest.fixture
def office(app):
    return enrolled_office(app)


def still_served(collector, office, sock=None) -> None:
    """The well-behaved device gets its answers: on its open connection, and on a new one."""
    if sock is not None:
        assert request(sock, "HEARTBEAT")["ok"] is True
    fresh = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
    try:
        assert request(fresh, "HEARTBEAT")["ok"] is True
    finally:
        fresh.close()


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def attacker(collector, office):
    """An enrolled device's connection past HELLO (the framing checks apply to everyone)."""
    return connect_device(collector, office.serial, office.cert_pem, office.key_pem)


def error_of(reply) -> tuple[str, object]:
    assert reply is not None, "the collector closed without an ERROR frame"
    assert (reply["type"], reply["ok"]) == ("ERROR", False), reply
    return reply["body"]["code"], reply["id"]


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: collector\r\n\r\n", b"\xff\xfe\xfd\xfc" + os.urandom(200)],
    ids=["http", "random"],
)
def test_garbage_bytes_are_refused_as_frame_too_large_and_closed(app, office, garbage):
    with running_collector(app) as collector:
        good = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        bad = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)

        bad.sendall(garbage)

        assert error_of(recv_frame(bad)) == ("frame_too_large", None)
        assert closed(bad)
        still_served(collector, office, good)


def test_a_truncated_frame_then_close_frees_the_connection(app, office):
    with running_collector(app) as collector:
        good = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        bad = attacker(collector, office)
        assert collector.server.connection_count == 2

        whole = frame_bytes({"v": 1, "id": 7, "type": "HEARTBEAT", "body": {}})
        bad.sendall(whole[: len(whole) // 2])
        bad.close()

        assert wait_for(lambda: collector.server.connection_count == 1)
        still_served(collector, office, good)


@pytest.mark.parametrize("length", [MAX_FRAME + 1, 2**32 - 1, 0], ids=["just-above", "huge", "zero"])
def test_an_oversize_or_zero_length_is_refused_with_frame_too_large_and_closed(app, office, length):
    with running_collector(app) as collector:
        good = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        bad = attacker(collector, office)

        bad.sendall(struct.pack(">I", length) + b"{" * 1000)

        reply = recv_frame(bad)
        assert error_of(reply) == ("frame_too_large", None)
        assert str(MAX_FRAME) in reply["body"]["message"]
        assert closed(bad)
        still_served(collector, office, good)


def test_invalid_json_is_a_malformed_frame_and_the_connection_goes_on(app, office):
    with running_collector(app) as collector:
        sock = attacker(collector, office)
        for body in (b"{not json", b"\xc3\x28 not utf-8", b"[1, 2, 3]", b'{"v": 1, "type": "HEARTBEAT"}'):
            sock.sendall(struct.pack(">I", len(body)) + body)
            assert error_of(recv_frame(sock)) == ("malformed_frame", None)

        reply = request(sock, "HEARTBEAT", id_="after-garbage")
        assert (reply["id"], reply["type"], reply["ok"]) == ("after-garbage", "HEARTBEAT", True)


def test_an_unknown_message_type_is_refused_and_the_connection_goes_on(app, office):
    with running_collector(app) as collector:
        sock = attacker(collector, office)

        reply = request(sock, "PRINT_MONEY", {"amount": 1000}, id_="x-1")

        assert error_of(reply) == ("unknown_message", "x-1")
        assert request(sock, "HEARTBEAT")["ok"] is True


def test_a_wrong_envelope_version_is_refused_with_the_request_id(app, office):
    with running_collector(app) as collector:
        sock = attacker(collector, office)
        send_frame(sock, {"v": 9, "id": 41, "type": "HEARTBEAT", "body": {}})

        reply = recv_frame(sock)

        assert error_of(reply) == ("unsupported_version", 41)
        assert request(sock, "HEARTBEAT")["ok"] is True


def test_a_slowloris_trickling_bytes_times_out_while_others_are_served(app, office):
    with running_collector(app, frame_timeout=1.0) as collector:
        good = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        slow = attacker(collector, office)
        header = frame_bytes({"v": 1, "id": 1, "type": "HEARTBEAT", "body": {}})[:3]
        started = time.monotonic()

        for byte in header:  # a byte every 0.4 s: the frame cannot be finished within the 1 s frame timeout
            slow.sendall(bytes([byte]))
            assert request(good, "HEARTBEAT")["ok"] is True
            time.sleep(0.4)

        assert error_of(recv_frame(slow)) == ("timeout", None)
        assert closed(slow)
        assert time.monotonic() - started < 3
        still_served(collector, office, good)


def test_a_silent_client_is_closed_after_the_idle_timeout(app, office):
    with running_collector(app, idle_timeout=0.5) as collector:
        silent = attacker(collector, office)
        started = time.monotonic()

        reply = recv_frame(silent)

        assert error_of(reply) == ("timeout", None)
        assert closed(silent)
        assert 0.4 < time.monotonic() - started < 3
        still_served(collector, office)


def test_a_client_that_never_starts_tls_is_dropped_after_the_handshake_timeout(app, office):
    with running_collector(app, handshake_timeout=0.5) as collector:
        plain = raw_tcp(collector.port)
        started = time.monotonic()

        assert plain.recv(100) == b""
        assert time.monotonic() - started < 3
        plain.close()
        still_served(collector, office)


def test_a_flood_beyond_max_per_address_is_refused_while_other_addresses_are_served(app, office, caplog):
    caplog.set_level(logging.INFO, logger="copydesk.collector")
    with running_collector(app, max_per_address=3) as collector:
        good = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        # The address's first three connections are served (without a certificate: ENROL only) and stay open.
        kept = [raw_tls(collector.port, collector.ca_pem, source=FLOOD_SOURCE) for _ in range(3)]

        refused = []
        for _ in range(10):
            sock = raw_tls(collector.port, collector.ca_pem, source=FLOOD_SOURCE)
            refused.append(recv_frame(sock))
            assert closed(sock)
            sock.close()
            assert request(good, "HEARTBEAT")["ok"] is True

        assert {error_of(reply) for reply in refused} == {("too_many_connections", None)}
        still_served(collector, office, good)
        for sock in kept:
            sock.close()
        # The address's count is released: it is served again.
        assert wait_for(lambda: collector.server.connection_count == 1)
        again = raw_tls(collector.port, collector.ca_pem, source=FLOOD_SOURCE)
        assert error_of(request(again, "HELLO", {}))[0] == "not_enrolled"
    assert f"code=too_many_connections peer={FLOOD_SOURCE}:" in caplog.text


def test_beyond_max_connections_everyone_new_is_refused_until_one_leaves(app, office):
    with running_collector(app, max_connections=2) as collector:
        first = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        second = connect_device(collector, office.serial, office.cert_pem, office.key_pem)

        third = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)
        assert error_of(recv_frame(third)) == ("too_many_connections", None)
        assert closed(third)

        assert request(first, "HEARTBEAT")["ok"] and request(second, "HEARTBEAT")["ok"]
        second.close()
        assert wait_for(lambda: collector.server.connection_count == 1)
        still_served(collector, office, first)


def test_refusals_are_logged_with_the_device_never_with_pins_passwords_or_document_names(app, office, caplog):
    caplog.set_level(logging.DEBUG, logger="copydesk.collector")
    document = "Lettera di licenziamento Bianchi.docx"
    job = {
        "device_seq": 1,
        "user_id": office.user_id,
        "function": "print",
        "sides_bw": 2,
        "sides_color": 0,
        "paper_size": "A4",
        "duplex": False,
        "status": "done",
        "document_name": document,
        "started_at": "2026-03-02T09:00:00+01:00",
        "ended_at": "2026-03-02T09:01:00+01:00",
    }
    with running_collector(app) as collector:
        sock = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        wrong_pin = request(sock, "IDENTIFY", {"pin": "86420975", "username": office.username})
        wrong_password = request(sock, "IDENTIFY", {"username": office.username, "password": "Wr0ng passphrase"})
        right_password = request(sock, "IDENTIFY", {"username": office.username, "password": office.password})
        right_pin = request(sock, "IDENTIFY", {"pin": office.pin})
        stored = request(sock, "TXN", {"transactions": [job]})
        bad_item = request(sock, "TXN", {"transactions": [{**job, "device_seq": 2, "sides_bw": "two"}]})
        bad_pin = request(sock, "IDENTIFY", {"pin": ["86420975"], "username": office.username})
        before_hello = raw_tls(collector.port, collector.ca_pem, office.cert_pem, office.key_pem)
        early = request(before_hello, "IDENTIFY", {"pin": office.pin})
        no_certificate = raw_tls(collector.port, collector.ca_pem)
        anonymous = request(no_certificate, "IDENTIFY", {"username": office.username, "password": office.password})

    assert (wrong_pin["body"]["identified"], wrong_password["body"]["identified"]) == (False, False)
    assert (right_password["body"]["identified"], right_pin["body"]["identified"]) == (True, True)
    assert stored["body"]["stored"] == 1
    assert error_of(bad_item)[0] == "invalid_message" and "transactions.0.sides_bw" in bad_item["body"]["fields"]
    assert error_of(bad_pin)[0] == "invalid_message"
    assert error_of(early)[0] == "hello_required"
    assert error_of(anonymous)[0] == "not_enrolled"
    text = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in (office.pin, "86420975", office.password, "Wr0ng passphrase", document, office.card):
        assert secret not in text
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused:")]
    assert any(
        "code=invalid_message type=TXN" in line and f"device_id={office.device_id}" in line and office.serial in line
        for line in refusals
    ), refusals
    assert any("code=hello_required" in line and f"device_id={office.device_id}" in line for line in refusals)
    assert any("code=not_enrolled" in line and "peer=127.0.0.1:" in line for line in refusals)


def test_the_collector_closes_gracefully_letting_connected_devices_see_the_end(app, office):
    with running_collector(app) as collector:
        sock = connect_device(collector, office.serial, office.cert_pem, office.key_pem)
        collector.call(collector.server.close())
        assert closed(sock)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", collector.port), timeout=2).close()
