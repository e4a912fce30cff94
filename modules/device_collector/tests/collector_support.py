"""What every collector test shares: the real collector on a free port, enrolled credentials, raw TLS sockets and
frames written by hand (struct + json, independent of the server's own framing code)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.db import db
from modules.device_collector import enrolment, pki
from modules.device_collector.server import CollectorServer
from modules.device_collector.simulator import make_csr

ROOT = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"
SERVER_HOSTNAMES = ["localhost", "127.0.0.1"]
# Long enough not to turn up by chance in a log line (a port, an id, a time).
CARD, PIN, PASSWORD = "0004521983", "73915468", "S3cret passphrase"


@dataclass
class Office:
    """A customer with one installed, enrolled MFP and a print user with a card, a PIN and a password."""

    customer_id: int
    device_id: int
    serial: str
    cert_pem: str
    key_pem: str
    user_id: int
    username: str = "mrossi"
    card: str = CARD
    pin: str = PIN
    password: str = PASSWORD


def enrolled_office(app, serial: str = "KY 1", customer_name: str = "Studio Bianchi") -> Office:
    """Studio Bianchi (or `customer_name`) with the colour MFP `serial` enrolled, print user mrossi (card, PIN,
    password, a 20.00 quota) and the dealer's prices; committed."""
    from modules.device_accounting import users
    from modules.device_accounting.tests import core_support as s

    with app.app_context():
        studio = s.customer(customer_name)
        machine = s.device(serial, studio)
        user = s.print_user(studio, "mrossi")
        users.add_card(user, CARD)
        users.set_pin(user, PIN)
        users.set_password(user, PASSWORD)
        s.simple_prices()
        s.quota(user, "20.00")
        db.session.commit()
        ids = studio.id, machine.id, machine.serial, user.id
    cert_pem, key_pem = enrolled_credentials(app, ids[1])
    return Office(ids[0], ids[1], ids[2], cert_pem, key_pem, ids[3])


@dataclass
class RunningCollector:
    host: str
    port: int
    ca_pem: str
    server: CollectorServer
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the collector's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextmanager
def running_collector(app, **limits: Any) -> Iterator[RunningCollector]:
    """The real CollectorServer on a free port of 127.0.0.1, in a thread with its own event loop; `limits` are
    CollectorServer's keyword arguments (idle_timeout=1.0, max_per_address=3, ...). Stopped (gracefully) on exit."""
    limits.setdefault("hostnames", SERVER_HOSTNAMES)
    server = CollectorServer(app, HOST, 0, **limits)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # reported to the test below
            failure.append(error)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="collector-test", daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError("the collector did not start within 60 s")
    if failure:
        thread.join(5)
        loop.close()
        raise failure[0]
    with app.app_context():
        ca_pem = pki.ca_certificate_pem()
    try:
        yield RunningCollector(HOST, server.port, ca_pem, server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def enrolled_credentials(app, device) -> tuple[str, str]:
    """(certificate PEM, key PEM) of `device` (a rentals Device, or its id) enrolled through enrolment's own code
    and CSR path, without the wire; committed."""
    from modules.rentals.models import Device

    with app.app_context():
        machine = db.session.get(Device, device if isinstance(device, int) else device.id)
        csr_pem, key_pem = make_csr(machine.serial or "device")
        _, code = enrolment.create_code(machine, None)
        _, cert_pem, _ = enrolment.redeem_code(code, csr_pem, None)
        db.session.commit()
    return cert_pem, key_pem


def client_context(
    ca_pem: str, cert_pem: str | None = None, key_pem: str | None = None, *, tls12: bool = False
) -> ssl.SSLContext:
    """A device's TLS context (pki.client_ssl_context); `tls12` makes one that offers TLS 1.2 at most."""
    if not tls12:
        return pki.client_ssl_context(ca_pem, cert_pem, key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem)
    if cert_pem and key_pem:
        pki.load_cert_chain(context, cert_pem, key_pem)
    return context


def raw_tls(
    port: int,
    ca_pem: str,
    cert_pem: str | None = None,
    key_pem: str | None = None,
    *,
    context: ssl.SSLContext | None = None,
    source: str | None = None,
    timeout: float = 10.0,
) -> ssl.SSLSocket:
    """A blocking TLS socket connected to the collector on 127.0.0.1:`port` (server name checked), with the
    device's certificate when given; `source` binds the client's address (127.0.0.2: another "address" on lo)."""
    context = context or client_context(ca_pem, cert_pem, key_pem)
    sock = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0) if source else None)
    try:
        return context.wrap_socket(sock, server_hostname=HOST)
    except BaseException:
        sock.close()
        raise


def raw_tcp(port: int, *, source: str | None = None, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0) if source else None)


def frame_bytes(obj: Any) -> bytes:
    data = json.dumps(obj).encode("utf-8")
    return struct.pack(">I", len(data)) + data


def send_frame(sock: socket.socket, obj: Any) -> None:
    sock.sendall(frame_bytes(obj))


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            if left == size:
                return None
            raise ConnectionError(f"EOF after {size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> dict[str, Any] | None:
    """The next frame's object, or None when the server closed the connection cleanly between frames."""
    header = _recv_exactly(sock, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    data = _recv_exactly(sock, length)
    if data is None:
        raise ConnectionError("EOF after a frame header")
    return json.loads(data.decode("utf-8"))


def closed(sock: socket.socket) -> bool:
    """True when the server has closed the connection: EOF (or a reset) on the next read."""
    try:
        return recv_frame(sock) is None
    except (ConnectionError, ssl.SSLError, OSError):
        return True


_ids = iter(range(1, 1 << 62))


def request(sock: socket.socket, type_: str, body: dict[str, Any] | None = None, id_: Any = None) -> dict[str, Any]:
    """Send one request and return the whole reply (envelope included); raises when the server closed instead."""
    request_id = next(_ids) if id_ is None else id_
    send_frame(sock, {"v": 1, "id": request_id, "type": type_, "body": body or {}})
    reply = recv_frame(sock)
    if reply is None:
        raise ConnectionError(f"the collector closed the connection instead of answering {type_}")
    return reply


def hello_body(serial: str, **extra: Any) -> dict[str, Any]:
    body = {"protocol_version": 1, "serial": serial, "firmware": "test 1.0", "capabilities": ["card", "pin"]}
    body.update(extra)
    return body


def connect_device(collector: RunningCollector, serial: str, cert_pem: str, key_pem: str, **options: Any):
    """A TLS socket of an enrolled device that has said HELLO (asserting the reply is a success)."""
    sock = raw_tls(collector.port, collector.ca_pem, cert_pem, key_pem, **options)
    reply = request(sock, "HELLO", hello_body(serial))
    assert reply["ok"] is True, reply
    return sock


# --- coroutines and the browser tests' event loop ------------------------------------------------------------------


def in_own_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` in a thread of its own, with this thread's context (the app context goes along),
    its result returned and its exception raised here. Playwright's sync API, which the browser tests keep for the
    whole session, leaves an event loop running in the main thread, where asyncio.run refuses to start."""
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(function, *args, **kwargs)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def run_async(coroutine: Any) -> Any:
    """asyncio.run(coroutine), wherever the test runs (see in_own_thread)."""
    return in_own_thread(asyncio.run, coroutine)


# --- the collector as its own process (`flask device-collector`), as operators run it -------------------------------


@contextmanager
def collector_process(app, url: str, port: int, log: Path, *options: str) -> Iterator[subprocess.Popen]:
    """`flask device-collector --port PORT *options` against the database `url` (whose app is `app`), its output in
    `log`; stopped with SIGTERM afterwards (killed after 10 s)."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "REDIS_URL": "",
        "MAIL_SERVER": "",
        "COPYDESK_COLLECTOR_HOST": HOST,
        "COPYDESK_COLLECTOR_PORT": str(port),
    }
    command = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "device-collector", "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen([*command, *options], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_listening(port: int, process: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the collector exited ({process.returncode}):\n{log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the collector did not listen on {port}:\n{log.read_text()}")
