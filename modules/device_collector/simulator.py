"""A simulated MFP: the reference client of the device protocol (TLS 1.3, frames, messages, offline buffer, the
release of held print jobs), and `run_simulation`, which enrols devices and plays realistic sessions against a
running collector."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from modules.device_collector import pki
from modules.device_collector.protocol import ERROR_CODES, HEADER_SIZE, MAX_BATCH, MAX_FRAME, PROTOCOL_VERSION

FIRMWARE = "copydesk-sim 1.0"
CAPABILITIES = ["card", "pin", "password", "offline", "counters", "batch"]
CUSTOMER_NAME = "Simulated customer"
# Share of each function among the jobs, as an office's MFP sees them.
FUNCTION_WEIGHTS = {"print": 55, "copy": 25, "scan": 10, "email": 5, "fax": 3, "ftp": 2}
SIZE_WEIGHTS = {"A4": 90, "A3": 7, "A5": 1, "letter": 1, "other": 1}
PRINTED = ("print", "copy", "fax")
DEFAULT_HASH = hashes.SHA256()


class DeviceError(Exception):
    """The collector answered with an ERROR frame: `code` (see protocol.ERROR_CODES), `message`, the whole `body`."""

    def __init__(self, code: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.body = code, message, body

    @property
    def retry_after(self) -> float | None:
        return self.body.get("retry_after")


class BufferFull(Exception):
    """The offline buffer reached the limits HELLO gave (max_jobs, max_hours): the device stops taking jobs."""


class ReleaseRefused(Exception):
    """The collector would not release a held job (RELEASE `allowed` false), or the login before it failed:
    `reason` (job_unknown, not_yours, expired, not_held, quota_exceeded...) and the `message` for the panel."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


class DocumentCorrupt(Exception):
    """The chunks of a held document do not add up to its size and SHA-256 digest: the device does not print it."""


@dataclass
class ReleasedJob:
    """One held job a release went through: the job as HELD_JOBS listed it, then either the document fetched and
    the TXN result of its print (`result`), or why the collector refused it (`refused`, `message`)."""

    job: dict[str, Any]
    document: bytes | None = None
    device_seq: int | None = None
    result: dict[str, Any] | None = None
    refused: str | None = None
    message: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class DeviceClient:
    """One TLS connection to the collector: requests answered in order, one at a time."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._next_id = 0

    @property
    def connected(self) -> bool:
        """Open, and usable from the running event loop (a connection dies with the loop it was opened in)."""
        if self.writer is None or self.writer.is_closing() or self.loop.is_closed():
            return False
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return True

    async def connect(
        self,
        host: str,
        port: int,
        ca_pem: str,
        cert_pem: str | None = None,
        key_pem: str | None = None,
        *,
        context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Open the connection; the server's certificate must be the installation's and name `server_hostname`
        (default: `host`). `context` (from pki.client_ssl_context) saves building one per connection."""
        context = context or pki.client_ssl_context(ca_pem, cert_pem, key_pem)
        self.loop = asyncio.get_running_loop()
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=server_hostname or host), timeout
        )

    async def send(self, type_: str, body: dict[str, Any]) -> int:
        """Write one request frame and return its id, without waiting for the reply."""
        if not self.connected:
            raise ConnectionError("not connected to the collector")
        self._next_id += 1
        data = json.dumps(
            {"v": PROTOCOL_VERSION, "id": self._next_id, "type": type_, "body": body},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        self.writer.write(len(data).to_bytes(HEADER_SIZE, "big") + data)
        await self.writer.drain()
        return self._next_id

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame the collector sends, decoded; ConnectionError when it closes the connection."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(HEADER_SIZE), timeout)
            length = int.from_bytes(header, "big")
            if not 0 < length <= MAX_FRAME:
                raise ConnectionError(f"the collector sent a frame of {length} bytes")
            data = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        except asyncio.IncompleteReadError as error:
            self.abort()
            raise ConnectionError("the collector closed the connection") from error
        except (OSError, TimeoutError):
            self.abort()
            raise
        return json.loads(data)

    async def request(self, type_: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a request and return the reply's body; DeviceError on an ERROR reply, ConnectionError/OSError
        (TimeoutError included) when the link drops."""
        sent = await self.send(type_, body)
        reply = await self.receive(timeout)
        if reply.get("ok"):
            if reply.get("id") != sent:
                self.abort()
                raise ConnectionError(f"reply {reply.get('id')!r} to request {sent}: out of order")
            return reply["body"]
        error = reply.get("body") or {}
        code = error.get("code", "internal_error")
        if ERROR_CODES.get(code, False):
            self.abort()
            if code == "timeout" and reply.get("id") != sent:
                # The collector had closed the idle connection before this request: it was not processed.
                raise StaleConnection(f"{code}: {error.get('message', '')}")
        raise DeviceError(code, error.get("message", ""), error)

    def abort(self) -> None:
        """Drop the connection at once, as a device losing power or its network does (no TLS goodbye)."""
        if self.writer is not None and not self.loop.is_closed():
            self.writer.transport.abort()
        self.writer = None

    async def close(self) -> None:
        if self.writer is None or self.loop.is_closed():
            self.writer = None
            return
        writer, self.writer = self.writer, None
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 2)


class StaleConnection(ConnectionError):
    """The collector had closed the connection before reading the request (e.g. the idle timeout): not processed."""


def make_csr(serial: str = "device", key: Any = None, algorithm: Any = DEFAULT_HASH) -> tuple[str, str]:
    """A certificate signing request, as a device makes one: (csr PEM, key PEM). The key is a new EC P-256 one
    unless `key` is given; `algorithm` is the signature's hash (None for Ed25519, which takes none)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = None
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), pki.private_key_pem(key)


class WrongFingerprint(Exception):
    """No certificate the server sent has the fingerprint typed: the wrong server or a mistyped fingerprint."""


def _unverified_context() -> ssl.SSLContext:
    """TLS 1.3 trusting nothing: only to read the chain a collector sends, before its CA is known."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def fetch_ca(host: str, port: int, fingerprint: str, timeout: float = 10.0) -> str:
    """The device CA's certificate (PEM), found by `fingerprint` (SHA-256, any case, colons and spaces ignored)
    in the chain the server sends, which is read without being trusted (docs/device-protocol.md, section 2)."""
    wanted = re.sub(r"[\s:]", "", fingerprint).lower()
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=_unverified_context(), server_hostname=host), timeout
    )
    try:
        tls = writer.get_extra_info("ssl_object")
        if hasattr(tls, "get_unverified_chain"):  # Python 3.13+
            chain = [bytes(der) for der in tls.get_unverified_chain()]
        else:
            chain = [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in tls._sslobj.get_unverified_chain()]
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    for der in chain:
        if hashlib.sha256(der).hexdigest() == wanted:
            return ssl.DER_cert_to_PEM_cert(der)
    raise WrongFingerprint("wrong server or wrong fingerprint: nothing sent")


async def enrol_by_fingerprint(host: str, port: int, fingerprint: str, code: str, serial: str) -> tuple[str, str, str]:
    """Enrol as a technician does it at the device: find the CA by the fingerprint staff read out, then ENROL over a
    connection verified against that CA alone. Returns (CA PEM, certificate PEM, key PEM); WrongFingerprint, with
    nothing sent, when the server's chain holds no certificate with that fingerprint."""
    ca_pem = await fetch_ca(host, port, fingerprint)
    cert_pem, key_pem = await enrol(host, port, ca_pem, code, serial)
    return ca_pem, cert_pem, key_pem


async def enrol(host: str, port: int, ca_pem: str, code: str, serial: str) -> tuple[str, str]:
    """Enrol with a one-time code over TLS without a client certificate: (certificate PEM, key PEM)."""
    csr_pem, key_pem = make_csr(serial)
    client = DeviceClient()
    await client.connect(host, port, ca_pem)
    try:
        reply = await client.request("ENROL", {"code": code, "csr": csr_pem, "serial": serial})
    finally:
        await client.close()
    return reply["certificate"], key_pem


async def renew(device: SimulatedDevice) -> dict[str, Any]:
    """Ask for a new certificate with a new key (RENEW); the device uses it from its next connection."""
    csr_pem, key_pem = make_csr(device.serial)
    reply = await device.call("RENEW", {"csr": csr_pem})
    device.cert_pem, device.key_pem = reply["certificate"], key_pem
    device._context = None
    return reply


@dataclass
class FlushResult:
    """What one flush achieved: acknowledged items by status, what is still buffered, and why it stopped early."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    pending: int = 0
    stopped: str | None = None  # None (all sent), "offline", "connection", or an ERROR code such as "try_later"
    retry_after: float | None = None

    @property
    def acknowledged(self) -> int:
        return self.stored + self.duplicates + self.refused


class SimulatedDevice:
    """An MFP's embedded app: its own increasing device_seq, an offline buffer (kept in `buffer_path` as JSON when
    given, so it survives a restart), and the messages of the protocol. Jobs are buffered when they finish and leave
    the buffer only once the collector acknowledged them (after its commit)."""

    def __init__(
        self,
        serial: str,
        host: str,
        port: int,
        ca_pem: str,
        cert_pem: str,
        key_pem: str,
        buffer_path: str | Path | None = None,
        *,
        firmware: str = FIRMWARE,
        model: str | None = None,
        language: str | None = None,
    ) -> None:
        self.serial, self.host, self.port = serial, host, port
        self.ca_pem, self.cert_pem, self.key_pem = ca_pem, cert_pem, key_pem
        self.buffer_path = Path(buffer_path) if buffer_path else None
        self.firmware, self.model, self.language = firmware, model, language
        self.client: DeviceClient | None = None
        self.online = True
        self.settings: dict[str, Any] = {}
        self.next_seq = 1
        self.buffer: list[dict[str, Any]] = []
        self.acknowledged: dict[int, dict[str, Any]] = {}  # device_seq -> the collector's result
        self._context: ssl.SSLContext | None = None
        if self.buffer_path and self.buffer_path.exists():
            saved = json.loads(self.buffer_path.read_text())
            self.next_seq, self.buffer = saved["next_seq"], saved["buffer"]

    # --- the connection ----------------------------------------------------------------------------------------

    async def hello(self) -> dict[str, Any]:
        """Connect (if need be) and say HELLO; returns and keeps the device's settings."""
        if self.client is not None and self.client.connected and self.settings:
            return self.settings
        await self._connect()
        return self.settings

    async def _connect(self) -> None:
        if not self.online:
            raise ConnectionError("the device is offline")
        if self._context is None:
            self._context = pki.client_ssl_context(self.ca_pem, self.cert_pem, self.key_pem)
        client = DeviceClient()
        await client.connect(self.host, self.port, self.ca_pem, context=self._context)
        body = {
            "protocol_version": PROTOCOL_VERSION,
            "serial": self.serial,
            "firmware": self.firmware,
            "capabilities": CAPABILITIES,
        }
        if self.model:
            body["model"] = self.model
        if self.language:
            body["language"] = self.language
        try:
            self.settings = await client.request("HELLO", body)
        except BaseException:
            client.abort()
            raise
        self.client = client

    async def call(self, type_: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """One request on the device's connection, opened (with HELLO) when needed; a connection the collector had
        already closed unread is replaced once. A dropped link raises ConnectionError/OSError."""
        for attempt in (1, 2):
            if self.client is None or not self.client.connected:
                await self._connect()
            try:
                return await self.client.request(type_, body, timeout)
            except StaleConnection:
                self.client = None
                if attempt == 2:
                    raise
            except (OSError, ssl.SSLError):
                self.client = None
                raise
        raise AssertionError("unreachable")

    def go_offline(self) -> None:
        """The network (or the collector) is gone: the connection drops, jobs stay in the buffer."""
        self.online = False
        if self.client is not None:
            self.client.abort()
            self.client = None

    def come_back(self) -> None:
        self.online = True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    # --- messages ----------------------------------------------------------------------------------------------

    async def login_card(self, card: str) -> dict[str, Any]:
        return await self.call("IDENTIFY", {"card": card})

    async def login_pin(self, pin: str, username: str | None = None) -> dict[str, Any]:
        body = {"pin": pin} if username is None else {"pin": pin, "username": username}
        return await self.call("IDENTIFY", body)

    async def login_password(self, username: str, password: str) -> dict[str, Any]:
        return await self.call("IDENTIFY", {"username": username, "password": password})

    async def authorize(
        self,
        user_id: int,
        function: str,
        sides_bw: int = 0,
        sides_color: int = 0,
        paper_size: str = "A4",
        duplex: bool = False,
        cost_center_id: int | None = None,
    ) -> dict[str, Any]:
        body = {
            "user_id": user_id,
            "function": function,
            "sides_bw": sides_bw,
            "sides_color": sides_color,
            "paper_size": paper_size,
            "duplex": duplex,
        }
        if cost_center_id is not None:
            body["cost_center_id"] = cost_center_id
        return await self.call("AUTHORIZE", body)

    async def send_counters(
        self, counters: dict[str, int], taken_at: str | None = None, supplies: dict[str, int] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"taken_at": taken_at or _now(), "counters": counters}
        if supplies:
            body["supplies"] = supplies
        return await self.call("COUNTERS", body)

    async def heartbeat(self) -> dict[str, Any]:
        return await self.call("HEARTBEAT", {})

    # --- held print jobs ---------------------------------------------------------------------------------------

    async def held_jobs(self) -> list[dict[str, Any]]:
        """HELD_JOBS: what the user identified on this connection may release here (theirs and their delegators'),
        oldest first."""
        return (await self.call("HELD_JOBS", {}))["jobs"]

    async def fetch_held_document(self, job_id: int) -> bytes:
        """The held job's document, RELEASE after RELEASE from offset 0 to the last chunk, checked against its size
        and SHA-256 digest (DocumentCorrupt otherwise); ReleaseRefused when the collector says no."""
        parts: list[bytes] = []
        offset = 0
        while True:
            reply = await self.call("RELEASE", {"job_id": job_id, "offset": offset}, timeout=60)
            if not reply["allowed"]:
                raise ReleaseRefused(reply["reason"], reply["message"])
            try:
                data = base64.b64decode(reply["data"], validate=True)
            except binascii.Error as error:
                raise DocumentCorrupt(f"job {job_id}: a chunk is not base64") from error
            if reply["offset"] != offset or len(data) != reply["length"] or not (data or reply["last"]):
                raise DocumentCorrupt(f"job {job_id}: the chunk at {offset} is not the one asked for")
            parts.append(data)
            offset += len(data)
            if reply["last"]:
                break
        document = b"".join(parts)
        if len(document) != reply["size"] or hashlib.sha256(document).hexdigest() != reply["digest"]:
            raise DocumentCorrupt(f"job {job_id}: the document does not match its size and digest")
        return document

    async def delete_held_job(self, job_id: int) -> dict[str, Any]:
        """DELETE: the identified user's held job will not print; {deleted, job_id} or {deleted: false, reason...}."""
        return await self.call("DELETE", {"job_id": job_id})

    async def release_held_jobs(self, login: dict[str, str], job_ids: Iterable[int] | None = None) -> list[ReleasedJob]:
        """Release held jobs as a user at the panel does: IDENTIFY with `login` ({"card": ...}, {"pin": ...}...),
        HELD_JOBS, then for each listed job (or those of `job_ids`) fetch every chunk, check the digest, print it
        (a buffered job of pages x copies sides, with held_job_id) and report the TXNs. ReleaseRefused when the
        login fails; a refused job comes back with `refused` set and was not printed."""
        identity = await self.call("IDENTIFY", login)
        if not identity.get("identified"):
            raise ReleaseRefused(identity.get("reason", "unknown_card"), identity.get("message", ""))
        user_id = identity["user"]["id"]
        wanted = None if job_ids is None else set(job_ids)
        released = []
        for job in await self.held_jobs():
            if wanted is not None and job["id"] not in wanted:
                continue
            started = _now()
            try:
                document = await self.fetch_held_document(job["id"])
            except ReleaseRefused as refused:
                released.append(ReleasedJob(job, refused=refused.reason, message=refused.message))
                continue
            sides = job["pages"] * job["copies"]
            item = self.finish_job(
                "print",
                0 if job["color"] else sides,
                sides if job["color"] else 0,
                user_id=job["owner"]["id"] if job["owner"] else user_id,  # the owner pays, also for a delegate
                paper_size=job["paper_size"],
                duplex=job["duplex"],
                document_name=job["title"],
                started_at=started,
                held_job_id=job["id"],
            )
            released.append(ReleasedJob(job, document=document, device_seq=item["device_seq"]))
        if any(job.device_seq is not None for job in released):
            await self.flush()
        for job in released:
            if job.device_seq is not None:
                job.result = self.acknowledged.get(job.device_seq)
        return released

    # --- jobs and the offline buffer ---------------------------------------------------------------------------

    @property
    def buffer_full(self) -> bool:
        offline = self.settings.get("offline") or {}
        if len(self.buffer) >= offline.get("max_jobs", 10_000):
            return True
        if self.buffer and offline.get("max_hours"):
            oldest = dt.datetime.fromisoformat(self.buffer[0]["ended_at"])
            return dt.datetime.now(dt.UTC) - oldest > dt.timedelta(hours=offline["max_hours"])
        return False

    def finish_job(
        self,
        function: str,
        sides_bw: int = 0,
        sides_color: int = 0,
        *,
        user_id: int | None = None,
        cost_center_id: int | None = None,
        paper_size: str = "A4",
        duplex: bool = False,
        status: str = "done",
        sheets: int | None = None,
        document_name: str | None = None,
        started_at: str | None = None,
        ended_at: str | None = None,
        held_job_id: int | None = None,
    ) -> dict[str, Any]:
        """Buffer a finished job under the next device_seq and return it; BufferFull beyond the offline limits."""
        if self.buffer_full:
            raise BufferFull(f"{len(self.buffer)} jobs wait to be sent")
        ended = ended_at or _now()
        item: dict[str, Any] = {
            "device_seq": self.next_seq,
            "function": function,
            "sides_bw": sides_bw,
            "sides_color": sides_color,
            "paper_size": paper_size,
            "duplex": duplex,
            "status": status,
            "started_at": started_at or ended,
            "ended_at": ended,
        }
        if user_id is not None:
            item["user_id"] = user_id
        if cost_center_id is not None:
            item["cost_center_id"] = cost_center_id
        if sheets is not None:
            item["sheets"] = sheets
        if document_name is not None and not (self.settings.get("privacy") or {}).get("hide_document_names"):
            item["document_name"] = document_name
        if held_job_id is not None:
            item["held_job_id"] = held_job_id
        self.next_seq += 1
        self.buffer.append(item)
        self._save()
        return item

    async def flush(self, batch: int = 500) -> FlushResult:
        """Send the buffer in TXN batches, oldest first; drop only what the collector acknowledged. On try_later or
        a dropped link everything unacknowledged stays, to be sent again (a resent job is acknowledged again)."""
        limit = min(batch, (self.settings.get("limits") or {}).get("max_batch", MAX_BATCH))
        result = FlushResult()
        while self.buffer:
            if not self.online:
                result.stopped = "offline"
                break
            chunk = self.buffer[:limit]
            try:
                reply = await self.call("TXN", {"transactions": chunk}, timeout=60)
            except DeviceError as error:
                result.stopped, result.retry_after = error.code, error.retry_after
                break
            except (OSError, ssl.SSLError):
                result.stopped = "connection"
                break
            done = set()
            for item in reply["results"]:
                seq = item["device_seq"]
                done.add(seq)
                self.acknowledged[seq] = item
                if item["status"] == "stored":
                    result.stored += 1
                elif item["status"] == "duplicate":
                    result.duplicates += 1
                else:
                    result.refused += 1
            self.buffer = [item for item in self.buffer if item["device_seq"] not in done]
            self._save()
            if not done:
                result.stopped = "no_results"
                break
        result.pending = len(self.buffer)
        return result

    def _save(self) -> None:
        if self.buffer_path is None:
            return
        temporary = self.buffer_path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(json.dumps({"serial": self.serial, "next_seq": self.next_seq, "buffer": self.buffer}))
            out.flush()
            os.fsync(out.fileno())  # on disk before it replaces the old buffer: a power cut leaves one or the other
        os.replace(temporary, self.buffer_path)


# --- the simulation ------------------------------------------------------------------------------------------------


@dataclass
class SimulatedUser:
    id: int
    username: str
    card: str
    pin: str


@dataclass
class SimulationReport:
    devices: int = 0
    users: int = 0
    sessions: int = 0
    jobs: int = 0  # jobs finished at the devices (buffered)
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    pending: int = 0  # still buffered at the end (never acknowledged)
    denied: int = 0  # AUTHORIZE said no
    partial: int = 0  # AUTHORIZE allowed part of the sides
    login_failures: int = 0
    readings: int = 0
    offline_periods: int = 0
    try_later: int = 0
    held_submitted: int = 0  # held print jobs submitted for the simulated users
    held_released: int = 0  # fetched, digest checked, printed and acknowledged as released
    held_refused: int = 0  # RELEASE said no (quota, expired...)
    held_bytes: int = 0  # document bytes fetched
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return self.stored + self.duplicates + self.refused

    @property
    def tx_per_second(self) -> float:
        return self.acknowledged / self.elapsed if self.elapsed else 0.0

    def as_lines(self) -> list[str]:
        lines = [
            f"devices: {self.devices}, print users: {self.users}",
            f"sessions: {self.sessions}, jobs finished: {self.jobs} (denied {self.denied}, "
            f"partly allowed {self.partial}, failed logins {self.login_failures})",
            f"acknowledged: {self.acknowledged} (stored {self.stored}, duplicates {self.duplicates}, "
            f"refused {self.refused}); still buffered: {self.pending}",
            f"counter readings: {self.readings}; offline periods: {self.offline_periods}; try later: {self.try_later}",
        ]
        if self.held_submitted or self.held_released or self.held_refused:
            lines.append(
                f"held jobs: submitted {self.held_submitted}, released {self.held_released} "
                f"({self.held_bytes:,} bytes fetched), refused {self.held_refused}"
            )
        lines.append(f"elapsed: {self.elapsed:.2f} s, {self.tx_per_second:,.0f} tx/s acknowledged")
        lines.extend(f"error: {error}" for error in self.errors[:10])
        return lines


def prepare(devices: int, users: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[SimulatedUser], str]:
    """In the app's database (app context; commits): the Simulated customer, its installed devices SIM-0001...,
    print users with cards and PINs, prices and quotas, each made only if missing; one enrolment code per device.
    Returns ([(serial, code)], users, the device CA's PEM)."""
    import sqlalchemy as sa

    from core.db import db
    from core.models import Partner
    from modules.device_accounting import quotas
    from modules.device_accounting import users as print_users
    from modules.device_accounting.cost_centers import save_cost_center
    from modules.device_accounting.models import CostCenter, PriceList, PrintUser, Quota
    from modules.device_accounting.pricing import save_price_list
    from modules.device_collector import enrolment, pki
    from modules.rentals.devices import create_device
    from modules.rentals.models import Device

    customer = db.session.scalars(sa.select(Partner).where(Partner.name == CUSTOMER_NAME)).first()
    if customer is None:
        customer = Partner(name=CUSTOMER_NAME, is_customer=True, language="en")
        db.session.add(customer)
        db.session.flush()
    if db.session.scalar(sa.select(PriceList.id).where(PriceList.customer_id == customer.id)) is None:
        entries = [
            {"function": function, "colour": colour, "paper_size": "any", "duplex": "any", "price_per_side": price}
            for function in PRINTED
            for colour, price in (("bw", "0.0100"), ("color", "0.0500"))
        ]
        entries.append(
            {"function": "scan", "colour": "bw", "paper_size": "any", "duplex": "any", "price_per_side": "0"}
        )
        save_price_list(customer.id, {"name": "Simulation", "valid_from": "2020-01-01", "entries": entries})
    centers = []
    for name in ("Administration", "Sales", "Engineering"):
        center = db.session.scalars(
            sa.select(CostCenter).where(CostCenter.customer_id == customer.id, CostCenter.name == name)
        ).first()
        centers.append(center or save_cost_center(customer.id, {"name": name}))
    codes = []
    for number in range(1, devices + 1):
        serial = f"SIM-{number:04d}"
        device = db.session.scalars(sa.select(Device).where(Device.serial == serial)).first()
        if device is None:
            device = create_device(
                {
                    "serial": serial,
                    "manufacturer": "Kyocera",
                    "model": "TASKalfa 2554ci",
                    "meters": ["bw", "color"],
                    "customer_id": customer.id,
                    "status": "installed",
                }
            )
        _record, code = enrolment.create_code(device, None)
        codes.append((serial, code))
    existing = {
        user.username: user
        for user in db.session.scalars(sa.select(PrintUser).where(PrintUser.customer_id == customer.id))
    }
    people = []
    for number in range(users):
        username = f"sim.user{number + 1:05d}"
        card, pin = f"SIM{seed % 100:02d}{number + 1:06d}", str(100_000 + number)
        user = existing.get(username)
        if user is None:
            center = centers[number % len(centers)]
            user = print_users.save_user(
                customer.id,
                {
                    "username": username,
                    "full_name": f"Simulated User {number + 1}",
                    "default_cost_center_id": center.id,
                },
            )
            print_users.add_card(user, card)
            print_users.set_pin(user, pin)
        if db.session.scalar(sa.select(Quota.id).where(Quota.user_id == user.id)) is None:
            quotas.save_quota(customer.id, {"user_id": user.id, "amount": "500.00", "overdraft": "5.00"})
        people.append(SimulatedUser(user.id, username, card, pin))
    ca_pem = pki.ca_certificate_pem()
    db.session.commit()
    return codes, people, ca_pem


def make_pdf(pages: int = 1, padding: int = 0, seed: int = 0) -> bytes:
    """A real PDF of `pages` blank A4 pages; `padding` random bytes ride along as an attached file, to make a
    document of some size (one fetched in several RELEASE chunks)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _page in range(pages):
        writer.add_blank_page(width=595, height=842)
    if padding:
        writer.add_attachment("padding.bin", random.Random(seed).randbytes(padding))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SIMULATED_PRINT_SERVER = "Simulated print server"


def hold_jobs(people: list[SimulatedUser], count: int, seed: int = 0) -> int:
    """Submit `count` held print jobs (generated PDFs of 1 to 12 pages) for the simulated users, through the
    Simulated print server as its CUPS backend would (app context; commits). Returns how many were new."""
    import sqlalchemy as sa

    from core.db import db
    from core.models import Partner
    from modules.device_accounting import held_jobs, print_servers
    from modules.device_accounting.models import PrintServer

    rng = random.Random(seed)
    customer_id = db.session.scalar(sa.select(Partner.id).where(Partner.name == CUSTOMER_NAME))
    server = db.session.scalars(
        sa.select(PrintServer).where(PrintServer.customer_id == customer_id, PrintServer.name == SIMULATED_PRINT_SERVER)
    ).first()
    if server is None:
        server, _token = print_servers.create_print_server(customer_id, SIMULATED_PRINT_SERVER)
    new = 0
    for number in range(count):
        person = people[number % len(people)]
        pages = rng.randint(1, 12)
        _job, created = held_jobs.submit_held_job(
            server,
            person.username,
            make_pdf(pages, seed=seed * 10_000 + number),
            title=f"Report {rng.randint(1, 9999)}.pdf",
            copies=rng.choice((1, 1, 1, 2)),
            color=rng.random() < 0.3,
            duplex=rng.random() < 0.4,
        )
        new += created
    db.session.commit()
    return new


async def _enrol_all(host: str, port: int, ca_pem: str, codes: list[tuple[str, str]]) -> list[SimulatedDevice]:
    async def one(serial: str, code: str) -> SimulatedDevice:
        cert_pem, key_pem = await enrol(host, port, ca_pem, code, serial)
        return SimulatedDevice(serial, host, port, ca_pem, cert_pem, key_pem, model="TASKalfa 2554ci")

    return list(await asyncio.gather(*(one(serial, code) for serial, code in codes)))


class _Player:
    """Plays one device's sessions: login by card (or PIN, now and then a wrong one), AUTHORIZE, the job, its TXN;
    counters now and then; offline every `offline_every` jobs for a few jobs (trusting the users it saw before)."""

    def __init__(self, device: SimulatedDevice, people: list[SimulatedUser], report: SimulationReport, seed: int):
        self.device, self.people, self.report = device, people, report
        self.rng = random.Random(seed)
        self.counters = {"bw": self.rng.randint(1_000, 90_000), "color": self.rng.randint(1_000, 40_000)}
        self.known: dict[int, dict[str, Any]] = {}  # user id -> IDENTIFY answer, for offline jobs

    def _job_shape(self) -> dict[str, Any]:
        rng = self.rng
        function = rng.choices(list(FUNCTION_WEIGHTS), weights=list(FUNCTION_WEIGHTS.values()))[0]
        bw = rng.randint(1, 12) if rng.random() < 0.9 else rng.randint(13, 120)
        color = rng.randint(1, 10) if function in ("print", "copy") and rng.random() < 0.3 else 0
        return {
            "function": function,
            "sides_bw": bw,
            "sides_color": color,
            "paper_size": rng.choices(list(SIZE_WEIGHTS), weights=list(SIZE_WEIGHTS.values()))[0],
            "duplex": function in PRINTED and rng.random() < 0.4,
        }

    async def _login(self) -> dict[str, Any] | None:
        person = self.rng.choice(self.people)
        roll = self.rng.random()
        if roll < 0.02:
            answer = await self.device.login_pin("999999999"[: 4 + self.rng.randint(0, 4)])
        elif roll < 0.3:
            answer = await self.device.login_pin(person.pin)
        else:
            answer = await self.device.login_card(person.card)
        if not answer.get("identified"):
            self.report.login_failures += 1
            return None
        self.known[answer["user"]["id"]] = answer
        return answer

    async def _online_job(self) -> None:
        identity = await self._login()
        if identity is None:
            return
        self.report.sessions += 1
        shape = self._job_shape()
        answer = await self.device.authorize(identity["user"]["id"], **shape)
        if not answer["allowed"]:
            allowed = answer.get("allowed_sides")
            if not allowed:
                self.report.denied += 1
                return
            self.report.partial += 1
            shape["sides_color"] = min(shape["sides_color"], allowed)
            shape["sides_bw"] = min(shape["sides_bw"], allowed - shape["sides_color"])
        self._finish(identity["user"]["id"], shape)
        flushed = await self.device.flush()
        self._count(flushed)

    def _finish(self, user_id: int, shape: dict[str, Any]) -> None:
        seconds = shape["sides_bw"] + shape["sides_color"] + self.rng.randint(3, 20)
        ended = dt.datetime.now(dt.UTC)
        started = ended - dt.timedelta(seconds=seconds)
        name = f"Document {self.rng.randint(1, 9999)}.pdf" if shape["function"] == "print" else None
        self.device.finish_job(
            **shape,
            user_id=user_id,
            document_name=name,
            started_at=started.isoformat(timespec="milliseconds"),
            ended_at=ended.isoformat(timespec="milliseconds"),
        )
        self.report.jobs += 1
        if shape["function"] in PRINTED:
            self.counters["bw"] += shape["sides_bw"]
            self.counters["color"] += shape["sides_color"]

    def _count(self, flushed: FlushResult) -> None:
        self.report.stored += flushed.stored
        self.report.duplicates += flushed.duplicates
        self.report.refused += flushed.refused
        if flushed.stopped == "try_later":
            self.report.try_later += 1

    async def release_held(self, people: list[SimulatedUser]) -> None:
        """Each of `people` logs in by card and releases every held job of theirs at this device."""
        for person in people:
            try:
                released = await self.device.release_held_jobs({"card": person.card})
            except (ReleaseRefused, DeviceError, DocumentCorrupt) as error:
                self.report.errors.append(f"{self.device.serial}: held jobs of {person.username}: {error}")
                continue
            for job in released:
                if job.refused is not None:
                    self.report.held_refused += 1
                elif job.result is not None and (job.result.get("held_job") or {}).get("released"):
                    self.report.held_released += 1
                    self.report.held_bytes += len(job.document or b"")
                else:
                    self.report.errors.append(f"{self.device.serial}: held job {job.job['id']}: {job.result}")

    async def play(self, jobs: int, offline_every: int, release_for: list[SimulatedUser] | None = None) -> None:
        await self.device.hello()
        await self.device.send_counters(dict(self.counters))
        self.report.readings += 1
        done = 0
        while done < jobs:
            if offline_every and done and done % offline_every == 0 and self.known:
                done += await self._offline(min(jobs - done, self.rng.randint(1, max(1, offline_every // 2))))
                continue
            try:
                await self._online_job()
            except DeviceError as error:
                if error.code == "try_later":
                    self.report.try_later += 1
                    await asyncio.sleep(min(error.retry_after or 1, 1))
                else:
                    self.report.errors.append(f"{self.device.serial}: {error}")
            done += 1
            if done % 25 == 0:
                await self.device.send_counters(dict(self.counters))
                self.report.readings += 1
        self._count(await self.device.flush())
        if release_for:
            await self.release_held(release_for)
        self.report.pending += len(self.device.buffer)
        await self.device.close()

    async def _offline(self, count: int) -> int:
        self.report.offline_periods += 1
        self.device.go_offline()
        for _job in range(count):
            user_id = self.rng.choice(list(self.known))
            self._finish(user_id, self._job_shape())
        self.device.come_back()
        self._count(await self.device.flush())
        return count


def run_simulation(
    host: str,
    port: int,
    devices: int,
    users: int,
    jobs: int,
    offline_every: int = 0,
    seed: int = 0,
    app: Any = None,
    release_held: int | None = None,
) -> SimulationReport:
    """Set up the Simulated customer (see prepare), enrol `devices` devices over the wire and play `jobs` jobs in
    all, spread over the devices, which work at the same time; returns what happened. With `release_held` (a
    number, 0 too), that many held print jobs are submitted first (hold_jobs) and, after its jobs, each device
    releases every held job of its share of the users (each user at one device)."""
    from flask import current_app, has_app_context

    if app is None:
        if has_app_context():
            app = current_app._get_current_object()
        else:
            from core import create_app

            app = create_app()
    with app.app_context():
        codes, people, ca_pem = prepare(devices, users, seed)
        submitted = hold_jobs(people, release_held, seed) if release_held else 0
    report = SimulationReport(devices=devices, users=users, held_submitted=submitted)

    async def main() -> None:
        enrolled = await _enrol_all(host, port, ca_pem, codes)
        started = time.perf_counter()
        shares = [jobs // devices + (1 if index < jobs % devices else 0) for index in range(devices)]
        players = [_Player(device, people, report, seed * 1000 + n) for n, device in enumerate(enrolled)]
        releasing = release_held is not None
        await asyncio.gather(
            *(
                player.play(share, offline_every, people[number::devices] if releasing else None)
                for number, (player, share) in enumerate(zip(players, shares, strict=True))
            )
        )
        report.elapsed = time.perf_counter() - started

    asyncio.run(main())
    return report
