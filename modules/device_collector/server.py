"""The collector: an asyncio TLS 1.3 server that reads frames, checks the device's certificate and answers each request
through handlers.handle in a worker thread, acknowledging only after the commit (docs/device-protocol.md)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Flask, has_app_context
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import exc as sa_exc

from core.db import db
from core.validation import ValidationError
from modules.device_collector import enrolment, pki, protocol
from modules.device_collector.protocol import DeviceSession, ProtocolError

log = logging.getLogger("copydesk.collector")

RETRY_AFTER = 5  # seconds a device waits after try_later
CLOSE_GRACE = 2.0  # seconds a closing connection has to read its last frame before the socket is dropped
SHUTDOWN_CLOSE_GRACE = 0.2  # the same when the collector stops: nothing a device sends then is answered anyway
SHUTDOWN_GRACE = 10.0  # seconds close() lets requests in progress commit and answer
REFUSING_MAX = 64  # connections refused with an ERROR frame at once; beyond, they are dropped before the handshake
# A stream's buffer holds a whole frame without pausing the socket.
READER_LIMIT = protocol.HEADER_SIZE + protocol.MAX_FRAME + 64 * 1024
LISTEN_BACKLOG = 1024
# Requests that may take a while (a batch of MAX_BATCH jobs, certificate signing, a held document unsealed and sent
# in chunks) get their own threads, so logins and authorisations never queue behind them.
BULK_TYPES = frozenset({"TXN", "COUNTERS", "ENROL", "RENEW", "RELEASE"})
# Threads storing batches, per process: few, since they share one interpreter lock with the logins and the event
# loop (more processes, not more threads, use more cores); and threads answering everything else.
DEFAULT_WORKERS = 2
INTERACTIVE_WORKERS = 4
# A frame body up to this size is decoded on the event loop (a login: microseconds); a bigger one (a batch) is
# decoded, checked and answered wholly in a batch thread, so the loop keeps serving the other connections.
INLINE_DECODE = 16 * 1024
# A worker process that dies within this many seconds of its start is restarted only after as many.
RESTART_DELAY = 5.0
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)

MESSAGES = {
    "no_certificate": _l("Without a device certificate only ENROL is accepted: enrol the device with its code first."),
    "not_enrolled": _l("This certificate was not issued to an enrolled device of this installation."),
    "revoked": _l("This device has been revoked: ask the dealer to enrol it again."),
    "certificate_expired": _l("This device's certificate has expired: enrol the device again."),
    "hello_required": _l("The first message of a connection must be HELLO."),
    "too_many_connections": _l("Too many connections: try again in a minute."),
    "try_later": _l("The database cannot be reached at the moment; nothing was stored. Try again in a few seconds."),
    "internal_error": _l("Something went wrong on the server; nothing was stored. The error has been logged."),
    "invalid_message": _l("Some fields of the message are not valid."),
}


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task
    busy: bool = False  # a request is being handled: close() lets it commit and answer
    tls: bool = False  # the handshake succeeded: closing sends close_notify


def _database_unavailable(error: BaseException) -> bool:
    if isinstance(error, DATABASE_UNAVAILABLE):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


def _hide_parameters(error: BaseException) -> None:
    """SQL parameters (document names, digests) never reach the log through a statement error's text."""
    if isinstance(error, sa_exc.StatementError):
        error.hide_parameters = True


def _tls_reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or error.__class__.__name__
    if isinstance(error, TimeoutError | ConnectionAbortedError):
        return "handshake_timeout"
    return error.__class__.__name__


class CollectorServer:
    """One collector process's TLS server. Everything a device needs lives in the database, so any instance behind a
    load balancer can serve any connection; per-connection state (DeviceSession) never outlives the connection."""

    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        *,
        max_connections: int = 1000,
        max_per_address: int = 200,
        idle_timeout: float = 60.0,
        frame_timeout: float = 10.0,
        handshake_timeout: float = 10.0,
        workers: int = DEFAULT_WORKERS,
        interactive_workers: int = INTERACTIVE_WORKERS,
        reuse_port: bool = False,
        hostnames: list[str] | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handle: Callable[[DeviceSession, str, dict], dict] | None = None,
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.max_connections, self.max_per_address = max_connections, max_per_address
        self.idle_timeout, self.frame_timeout, self.handshake_timeout = idle_timeout, frame_timeout, handshake_timeout
        self.hostnames = list(hostnames or ["localhost", "127.0.0.1"])
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.ssl_context = ssl_context
        if handle is None:
            from modules.device_collector import handlers

            handle = handlers.handle
        self._handle = handle
        self.reuse_port = reuse_port
        self._bulk = ThreadPoolExecutor(max(1, workers), thread_name_prefix="collector-bulk")
        self._interactive = ThreadPoolExecutor(max(1, interactive_workers), thread_name_prefix="collector")
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._by_address: dict[str, int] = {}
        self._total = 0
        self._refusing = 0
        self._closing = False
        self._closed: asyncio.Event | None = None

    @property
    def connection_count(self) -> int:
        """Connections being served now (refused ones not included)."""
        return self._total

    # --- life cycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the TLS context once and bind; `port` is then the bound port (useful with port 0)."""
        if self.ssl_context is None:
            with self.app.app_context():
                self.ssl_context = pki.server_ssl_context(self.hostnames, self.tls_cert, self.tls_key)
                db.session.commit()
        self._closed = asyncio.Event()
        self._server = await asyncio.start_server(
            self._on_connect,
            self.host,
            self.port,
            limit=READER_LIMIT,
            backlog=LISTEN_BACKLOG,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Until close()."""
        assert self._closed is not None, "start() first"
        await self._closed.wait()

    async def close(self) -> None:
        """Stop accepting, let requests in progress commit and answer (SHUTDOWN_GRACE), close every connection."""
        if self._closing:
            if self._closed is not None:
                await self._closed.wait()
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                connection.task.cancel()
        tasks = [connection.task for connection in self._connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown_pools)
        if self._closed is not None:
            self._closed.set()

    def _shutdown_pools(self) -> None:
        self._interactive.shutdown(wait=True)
        self._bulk.shutdown(wait=True)

    # --- one connection -------------------------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        ip, address = str(peer[0]), f"{peer[0]}:{peer[1]}"
        if self._closing:
            writer.transport.abort()
            return
        connection = _Connection(asyncio.current_task())  # type: ignore[arg-type]
        self._connections.add(connection)
        try:
            if self._total >= self.max_connections or self._by_address.get(ip, 0) >= self.max_per_address:
                await self._refuse_connection(writer, address, connection)
                return
            self._total += 1
            self._by_address[ip] = self._by_address.get(ip, 0) + 1
            try:
                await self._serve(reader, writer, address, connection)
            finally:
                self._total -= 1
                left = self._by_address[ip] - 1
                if left:
                    self._by_address[ip] = left
                else:
                    del self._by_address[ip]
        except asyncio.IncompleteReadError:
            log.info("connection closed inside a frame: peer=%s", address)
        except (ConnectionError, ssl.SSLError, OSError) as error:
            log.info("connection lost: peer=%s error=%s", address, error.__class__.__name__)
        except asyncio.CancelledError:
            pass  # close(): the connection ends here (a task ending cancelled would be logged by asyncio's streams)
        except Exception:
            log.exception("collector connection failed: peer=%s", address)
        finally:
            try:
                await self._close(writer, connection)
            finally:
                self._connections.discard(connection)

    async def _refuse_connection(self, writer: asyncio.StreamWriter, address: str, connection: _Connection) -> None:
        """Beyond the connection caps: an ERROR too_many_connections (the device learns to wait), or, when already
        refusing many, a plain drop that costs no handshake."""
        if self._refusing >= REFUSING_MAX:
            log.warning("connection dropped: too many connections, peer=%s", address)
            writer.transport.abort()
            return
        self._refusing += 1
        try:
            log.warning("refused: code=too_many_connections peer=%s", address)
            if await self._handshake(writer, address, connection):
                error = ProtocolError("too_many_connections", self._message("too_many_connections", None))
                await self._write(writer, protocol.encode_frame(protocol.error_reply(None, error)))
        finally:
            self._refusing -= 1

    async def _handshake(self, writer: asyncio.StreamWriter, address: str, connection: _Connection) -> bool:
        try:
            async with asyncio.timeout(self.handshake_timeout + 1):
                await writer.start_tls(self.ssl_context, ssl_handshake_timeout=self.handshake_timeout)
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            log.warning("refused: code=tls_handshake reason=%s peer=%s", _tls_reason(error), address)
            return False
        connection.tls = True
        return True

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str, connection: _Connection
    ) -> None:
        if not await self._handshake(writer, address, connection):
            return
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        session = DeviceSession(address=address, certificate_fingerprint=pki.fingerprint(der) if der else None)
        session.extra["idle_timeout"] = self.idle_timeout  # HELLO tells the device
        loop = asyncio.get_running_loop()
        if session.certificate_fingerprint is not None:
            connection.busy = True
            try:
                refusal = await loop.run_in_executor(self._interactive, self._check_at_connect, session)
            finally:
                connection.busy = False
            if refusal is not None:
                self._log_refusal(session, refusal)
                await self._write(writer, protocol.encode_frame(protocol.error_reply(None, refusal)))
                return

        while not self._closing:
            try:
                data = await protocol.read_frame_bytes(reader, self.idle_timeout, self.frame_timeout)
            except ProtocolError as error:
                self._log_refusal(session, error)
                await self._write(writer, protocol.encode_frame(protocol.error_reply(None, error)))
                if error.closes:
                    return
                continue
            if data is None:
                return
            if len(data) > INLINE_DECODE:
                pool, call = self._bulk, partial(self._process_frame, session, data)
            else:
                request_id, type_, body, error = self._parse(session, data)
                if error is not None:
                    self._log_refusal(session, error, type_)
                    await self._write(writer, protocol.encode_frame(protocol.error_reply(request_id, error)))
                    if error.closes:
                        return
                    continue
                pool = self._bulk if type_ in BULK_TYPES else self._interactive
                call = partial(self._process, session, request_id, type_, body)
            connection.busy = True
            try:
                frame, error, type_ = await loop.run_in_executor(pool, call)
                await self._write(writer, frame)
            finally:
                connection.busy = False
            if error is not None:
                self._log_refusal(session, error, type_)
                if error.closes:
                    return

    def _parse(
        self, session: DeviceSession, data: bytes
    ) -> tuple[str | int | None, str | None, dict[str, Any], ProtocolError | None]:
        """(id, type, body, None) of a frame's request, or its refusal as (id or None, type or None, {}, error)."""
        request_id: str | int | None = None
        type_ = None
        try:
            obj = protocol.decode_body(data)
            request_id = protocol.envelope_id(obj)
            request_id, type_, body = protocol.parse_envelope(obj)
            self._check_order(session, type_)
        except ProtocolError as error:
            return request_id, type_, {}, error
        return request_id, type_, body, None

    def _check_order(self, session: DeviceSession, type_: str) -> None:
        """What needs no database: a known message, ENROL alone without a certificate, HELLO first with one."""
        if type_ not in protocol.MESSAGE_TYPES:
            raise ProtocolError("unknown_message", f"Unknown message type {type_[:40]!r}.")
        if session.certificate_fingerprint is None:
            if type_ != "ENROL":
                raise ProtocolError("not_enrolled", self._message("no_certificate", session.language))
        elif not session.hello_done and type_ != "HELLO":
            raise ProtocolError("hello_required", self._message("hello_required", session.language))

    async def _write(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        writer.write(frame)
        # A peer that stops reading cannot hold the connection (and its buffers) for ever.
        await asyncio.wait_for(writer.drain(), self.idle_timeout)

    async def _close(self, writer: asyncio.StreamWriter, connection: _Connection) -> None:
        """Close with TLS's close_notify; the peer gets CLOSE_GRACE to read what was sent last, then it is dropped."""
        if not connection.tls:
            writer.transport.abort()
            return
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), SHUTDOWN_CLOSE_GRACE if self._closing else CLOSE_GRACE)
        except BaseException:  # the grace is over, the peer is gone, or close() cancelled us: drop the socket
            writer.transport.abort()

    # --- in a worker thread ---------------------------------------------------------------------------------------

    def _check_at_connect(self, session: DeviceSession) -> ProtocolError | None:
        """The certificate's refusal right after the handshake, if any. With the database down nothing is decided
        here: the check before each request answers try_later until it is back."""
        with self.app.app_context():
            try:
                self._verify(session)
            except ProtocolError as error:
                return error
            except Exception as error:
                _hide_parameters(error)
                if not _database_unavailable(error):
                    log.exception("certificate check failed: peer=%s", session.address)
                else:
                    log.warning("certificate check postponed, database unavailable: peer=%s", session.address)
            return None

    def _verify(self, session: DeviceSession) -> Any:
        """The certificate's device (CollectorDevice, its rentals device loaded along), or ProtocolError."""
        collector_device, problem = enrolment.check_certificate(session.certificate_fingerprint)
        if collector_device is not None:
            session.collector_device_id = collector_device.id
            session.device_id = collector_device.device_id
            if session.serial is None:
                session.serial = collector_device.device.serial
        if problem is not None:
            raise ProtocolError(problem, self._message(problem, session.language))
        return collector_device

    def _process_frame(self, session: DeviceSession, data: bytes) -> tuple[bytes, ProtocolError | None, str | None]:
        """A big frame, decoded and answered here in a batch thread (see INLINE_DECODE)."""
        request_id, type_, body, error = self._parse(session, data)
        if error is not None:
            return protocol.encode_frame(protocol.error_reply(request_id, error)), error, type_
        return self._process(session, request_id, type_, body)

    def _process(
        self, session: DeviceSession, request_id: str | int | None, type_: str, body: dict[str, Any]
    ) -> tuple[bytes, ProtocolError | None, str | None]:
        """One request, in one app context: the certificate again (a revocation counts at once), the schema, the
        handler, the commit; then the encoded reply. Returns (frame, the error sent or None, the type)."""
        with self.app.app_context():
            try:
                # Held for the whole request: the session's identity map keeps only weak references, and the
                # handlers need this device and its rentals device again (no second query for either).
                collector_device = self._verify(session) if session.certificate_fingerprint is not None else None
                protocol.validate_request(type_, body)
                result = self._handle(session, type_, body)
                frame = protocol.encode_frame(protocol.reply(request_id, type_, result))
                db.session.commit()
                if type_ == "HELLO":
                    session.hello_done = True
                del collector_device
                return frame, None, type_
            except Exception as exc:
                with suppress(Exception):
                    db.session.rollback()
                error = self._protocol_error(exc, session, type_)
                return protocol.encode_frame(protocol.error_reply(request_id, error)), error, type_

    def _protocol_error(self, exc: Exception, session: DeviceSession, type_: str) -> ProtocolError:
        if isinstance(exc, ProtocolError):
            return exc
        if isinstance(exc, ValidationError):
            fields = {name: str(problem) for name, problem in exc.errors.items()}
            return ProtocolError("invalid_message", self._message("invalid_message", session.language), fields=fields)
        if isinstance(exc, enrolment.EnrolmentRefused):
            with force_locale(self._language(session.language)):
                return ProtocolError("enrolment_refused", exc.message, reason=exc.reason)
        _hide_parameters(exc)
        if _database_unavailable(exc):
            log.warning(
                "database unavailable: type=%s device_id=%s peer=%s error=%s",
                type_,
                session.device_id,
                session.address,
                exc.__class__.__name__,
            )
            return ProtocolError("try_later", self._message("try_later", session.language), retry_after=RETRY_AFTER)
        log.error(
            "internal error: type=%s device_id=%s serial=%s peer=%s",
            type_,
            session.device_id,
            session.serial,
            session.address,
            exc_info=exc,
        )
        return ProtocolError("internal_error", self._message("internal_error", session.language))

    # --- messages and logs ----------------------------------------------------------------------------------------

    def _language(self, language: str | None) -> str:
        return language if language in self.app.config["LANGUAGES"] else "en"

    def _message(self, key: str, language: str | None) -> str:
        """MESSAGES[key] in the device's language (English until its HELLO names one)."""
        if has_app_context():
            with force_locale(self._language(language)):
                return str(MESSAGES[key])
        with self.app.app_context(), force_locale(self._language(language)):
            return str(MESSAGES[key])

    def _log_refusal(self, session: DeviceSession, error: ProtocolError, type_: str | None = None) -> None:
        """Who was refused and why; never the request's body (PINs, passwords, document names), only field names."""
        fields = error.details.get("fields")
        log.warning(
            "refused: code=%s type=%s device_id=%s serial=%s peer=%s%s%s",
            error.code,
            type_,
            session.device_id,
            session.serial,
            session.address,
            f" reason={error.details['reason']}" if "reason" in error.details else "",
            f" fields={','.join(sorted(fields))}" if isinstance(fields, dict) else "",
        )


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve_here(app: Flask, host: str, port: int, announce: str | None, **options: Any) -> None:
    """One asyncio server in this process until SIGTERM or SIGINT; then the requests in progress finish."""
    # Worker threads hand the interpreter over every millisecond (5 by default): an AUTHORIZE waiting behind a batch
    # being stored gets its turn sooner.
    sys.setswitchinterval(0.001)
    # The app's objects live as long as the process: kept out of the collector's scans, and full scans made rarer,
    # so storing a batch (thousands of short-lived rows) is not interrupted by scans of everything loaded at start.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

    async def main() -> None:
        server = CollectorServer(app, host, port, **options)
        await server.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if announce is not None:
            print(f"Device collector listening on {host}:{server.port} (TLS 1.3); {announce}", flush=True)
        log.info("listening on %s:%s (pid %s)", host, server.port, os.getpid())
        await stop.wait()
        log.info("stopping: finishing the requests in progress")
        await server.close()

    asyncio.run(main())


def _ca_fingerprint(app: Flask) -> str:
    with app.app_context():
        fingerprint = pki.display_fingerprint(pki.ensure_ca().fingerprint)
        db.session.commit()
    return f"CA fingerprint {fingerprint}"


def run(app: Flask, host: str, port: int, *, processes: int = 1, **options: Any) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in progress and stop (`flask device-collector`).

    processes > 1: as many worker processes, each its own server on the same port (SO_REUSEPORT: the kernel spreads
    the connections), sharing nothing but the database; this process supervises them (one that dies is started
    again) and passes SIGTERM and SIGINT on."""
    _configure_logging()
    if processes <= 1:
        _serve_here(app, host, port, _ca_fingerprint(app), **options)
        return
    _supervise(app, host, port, processes, **options)


def _supervise(app: Flask, host: str, port: int, processes: int, **options: Any) -> None:
    announce = _ca_fingerprint(app)
    if options.get("ssl_context") is None:
        with app.app_context():
            hostnames = options.pop("hostnames", None) or ["localhost", "127.0.0.1"]
            tls_cert, tls_key = options.pop("tls_cert", None), options.pop("tls_key", None)
            options["ssl_context"] = pki.server_ssl_context(hostnames, tls_cert, tls_key)
            db.session.commit()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()  # no connection crosses the fork
    holder = None
    if port == 0:  # one free port for all: held (bound, never listening) until the workers have it
        holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
        port = holder.getsockname()[1]
    children: dict[int, tuple[int, float]] = {}
    stopping = False

    def spawn(number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _serve_here(app, host, port, None, reuse_port=True, **options)
            except BaseException:
                log.exception("collector process %s failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = (number, time.monotonic())

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for number in range(processes):
        spawn(number)
    print(f"Device collector listening on {host}:{port} (TLS 1.3, {processes} processes); {announce}", flush=True)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        number, started = children.pop(pid, (None, 0.0))
        if number is None or stopping:
            continue
        log.error("collector process %s exited (status %s): starting another", pid, os.waitstatus_to_exitcode(status))
        if time.monotonic() - started < RESTART_DELAY:
            time.sleep(RESTART_DELAY)
        if not stopping:
            spawn(number)
    if holder is not None:
        holder.close()
    log.info("stopped")
