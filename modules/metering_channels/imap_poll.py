"""Polling a mailbox over IMAP (TLS or STARTTLS): every message in the folder read once (by its Message-ID, or the
SHA-256 of its bytes), then moved to the processed folder (it became a reading) or the unmatched one (it waits for
staff). A handled message leaves the folder, so each poll reads whatever is there (UID SEARCH UNDELETED): one whose
move failed is moved at the next poll without being read again.

The server's certificate is checked against the system's CAs, or against the CA file in the configuration key
COPYDESK_IMAP_CA_FILE (a dealer's own mail server, the tests' dovecot). A user name or password that is not ASCII
logs in with AUTHENTICATE PLAIN (UTF-8); folder names are sent in IMAP's modified UTF-7.
"""

from __future__ import annotations

import base64
import contextlib
import email
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from core.crypto import SealBroken, seal, unseal
from core.db import db, utcnow
from modules.metering_channels import emails
from modules.metering_channels.models import CounterEmail, Mailbox, set_poll_state

PURPOSE = "metering_channels.mailbox"
TIMEOUT = 30.0
LOCK_CLASS = 0x4D43484D  # "MCHM": pg advisory lock class of a mailbox poll, apart from any other advisory lock
SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")
LIST_RE = re.compile(rb'\((?P<flags>[^)]*)\) (?:"(?P<sep>[^"]*)"|NIL) ')
NAMESPACE_RE = re.compile(rb'^\(\("(?P<prefix>[^"]*)" (?:"(?P<sep>[^"]*)"|NIL)\)')


class PollError(Exception):
    """A poll that cannot go on, with the mailbox's error in plain words."""


@dataclass
class PollResult:
    """One poll of one mailbox: messages read, how many became readings, went to the queue, or were seen before."""

    fetched: int = 0
    processed: int = 0
    unmatched: int = 0
    duplicates: int = 0
    error: str | None = None
    busy: bool = False  # another poll of the mailbox was running: this one did nothing


def set_password(mailbox: Mailbox, password: str) -> None:
    mailbox.password_sealed = seal(password, PURPOSE)


def ssl_context() -> ssl.SSLContext:
    cafile = current_app.config.get("COPYDESK_IMAP_CA_FILE") or None
    return ssl.create_default_context(cafile=cafile)


def connect(mailbox: Mailbox) -> imaplib.IMAP4:
    """A logged-in connection to the mailbox's server, TLS from the start (ssl) or upgraded (starttls)."""
    context = ssl_context()
    timeout = float(current_app.config.get("COPYDESK_IMAP_TIMEOUT", TIMEOUT))
    if mailbox.security == "ssl":
        imap = imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=context, timeout=timeout)
    else:
        imap = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
        try:
            imap.starttls(ssl_context=context)
        except Exception:
            imap.shutdown()
            raise
    try:
        login(imap, mailbox.username, unseal(mailbox.password_sealed or "", PURPOSE))
    except Exception:
        imap.shutdown()
        raise
    return imap


def login(imap: imaplib.IMAP4, username: str, password: str) -> None:
    """LOGIN for ASCII credentials; AUTHENTICATE PLAIN with UTF-8 (RFC 4616) for others, which LOGIN cannot send."""
    if username.isascii() and password.isascii():
        imap.login(username, password)
    else:
        imap.authenticate("PLAIN", lambda _challenge: f"\0{username}\0{password}".encode())


def imap_utf7(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3): "Letture è" -> "Letture &AOg-"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _namespace(imap: imaplib.IMAP4) -> tuple[str, str]:
    """The personal namespace's prefix ("" or e.g. "INBOX.") and the hierarchy separator ("/" or ".")."""
    prefix, separator = "", None
    with contextlib.suppress(imaplib.IMAP4.error):
        typ, data = imap.namespace()
        match = NAMESPACE_RE.match(data[0] or b"") if typ == "OK" and data and isinstance(data[0], bytes) else None
        if match:
            prefix = match.group("prefix").decode("utf-8", "replace")
            separator = match.group("sep").decode() if match.group("sep") else None
    if separator is None:
        typ, data = imap.list('""', '""')
        for line in data or ():
            found = LIST_RE.match(line or b"") if isinstance(line, bytes) else None
            if typ == "OK" and found and found.group("sep"):
                separator = found.group("sep").decode()
                break
    return prefix, separator or "/"


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _folder(name: str, separator: str) -> str:
    return _quote(imap_utf7(name.replace("/", separator)))


def _ensure(imap: imaplib.IMAP4, name: str, prefix: str, separator: str) -> str:
    """The folder (quoted, encoded) to move messages to, created when missing: as configured, or under the personal
    namespace's prefix (servers that keep every folder under "INBOX."). Raises PollError when it cannot be created."""
    candidates = [_folder(name, separator)]
    if prefix and not name.replace("/", separator).upper().startswith(prefix.upper()):
        candidates.append(_quote(imap_utf7(prefix + name.replace("/", separator))))
    for folder in candidates:
        typ, _data = imap.select(folder, readonly=True)
        if typ == "OK":
            return folder
    answer = ""
    for folder in candidates:
        typ, data = imap.create(folder)
        if typ == "OK":
            imap.subscribe(folder)
            return folder
        answer = _text(imaplib.IMAP4.error(data[0] if data else typ))
    raise PollError(_("The mail server refuses to create the folder %(folder)s: %(error)s", folder=name, error=answer))


def _capabilities(imap: imaplib.IMAP4) -> set[str]:
    """What the server offers once logged in (MOVE, UIDPLUS often appear only then)."""
    typ, data = imap.capability()
    if typ == "OK" and data and data[0]:
        return {word.upper() for word in data[0].decode("ascii", "replace").split()}
    return {str(c).upper() for c in imap.capabilities}


def _uidvalidity(imap: imaplib.IMAP4) -> int | None:
    _typ, data = imap.response("UIDVALIDITY")
    try:
        return int(data[0]) if data and data[0] else None
    except (TypeError, ValueError):
        return None


def _move(imap: imaplib.IMAP4, uid: int, folder: str, can_move: bool, uidplus: bool) -> None:
    if can_move:
        typ, data = imap.uid("MOVE", str(uid), folder)
        if typ == "OK":
            return
    typ, data = imap.uid("COPY", str(uid), folder)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"COPY to {folder} failed: {data!r}")
    imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
    if uidplus:
        imap.uid("EXPUNGE", str(uid))
    else:
        imap.expunge()


@contextlib.contextmanager
def exclusive(mailbox_id: int) -> Iterator[bool]:
    """Whether this is the mailbox's only poll now (the job and "Poll now" never read one mailbox at once).

    PostgreSQL: a session advisory lock, tried without waiting, on a connection of its own, held for the whole poll
    (the poll commits after every message, which would end a row lock). SQLite (one process): always True.
    """
    bind = db.session.get_bind()
    if bind.dialect.name != "postgresql":
        yield True
        return
    with bind.engine.connect() as conn:
        params = {"cls": LOCK_CLASS, "id": mailbox_id}
        got = bool(conn.scalar(sa.text("SELECT pg_try_advisory_lock(:cls, :id)"), params))
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:cls, :id)"), params)
                conn.commit()


def poll(mailbox: Mailbox) -> PollResult:
    """Read the mailbox's messages, import each (emails.receive), commit, move it; errors go on the mailbox.

    Commits after every message, so a poll that breaks off halfway keeps what it did; nothing it meets (a server
    error, a message no profile foresaw) raises. Another poll of the mailbox running: returns at once (busy).
    """
    result = PollResult()
    mailbox_id = mailbox.id
    with exclusive(mailbox_id) as alone:
        if not alone:
            result.busy = True
            return result
        return _poll_alone(mailbox, mailbox_id, result)


def _poll_alone(mailbox: Mailbox, mailbox_id: int, result: PollResult) -> PollResult:
    try:
        imap = connect(mailbox)
    except Exception as error:  # every failure is the mailbox's error, none stops the job
        db.session.rollback()
        return _failed(mailbox_id, result, _connect_error(error))
    try:
        _poll(imap, mailbox_id, result)
    except PollError as error:
        db.session.rollback()
        return _failed(mailbox_id, result, str(error))
    except (OSError, imaplib.IMAP4.error) as error:
        db.session.rollback()
        return _failed(mailbox_id, result, _("The mail server broke off the poll: %(error)s", error=_text(error)))
    except Exception as error:  # a bug or a message nobody foresaw: the error, not a stopped job
        db.session.rollback()
        current_app.logger.exception("poll of mailbox %s failed", mailbox_id)
        return _failed(mailbox_id, result, _("The poll failed: %(error)s", error=_text(error)))
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    mailbox = db.session.get(Mailbox, mailbox_id)
    set_poll_state(mailbox, last_polled_at=utcnow(), last_error=None)
    db.session.commit()
    return result


def _fetched(data) -> tuple[bytes | None, int | None]:
    """The literal and the RFC822.SIZE of a one-message FETCH answer."""
    literal, size = None, None
    for part in data or ():
        found = SIZE_RE.search(part[0] if isinstance(part, tuple) else part if isinstance(part, bytes) else b"")
        size = int(found.group(1)) if found else size
        if literal is None and isinstance(part, tuple) and len(part) > 1:
            literal = part[1]
    return literal, size


def _known(header: bytes) -> CounterEmail | None:
    """The email already stored under this header's Message-ID (a message whose move failed last time)."""
    msg = email.message_from_bytes(header, policy=policy.compat32)
    key = emails.message_key(msg, header)
    if key.startswith("sha256:"):  # no Message-ID: the key is the whole message's hash
        return None
    return db.session.scalar(sa.select(CounterEmail).where(CounterEmail.message_key == key))


def _poll(imap: imaplib.IMAP4, mailbox_id: int, result: PollResult) -> None:
    mailbox = db.session.get(Mailbox, mailbox_id)
    prefix, separator = _namespace(imap)
    # Both folders exist before any message is read: a message is imported only when it can be moved out.
    targets = {
        "processed": _ensure(imap, mailbox.processed_folder, prefix, separator),
        "unmatched": _ensure(imap, mailbox.unmatched_folder, prefix, separator),
    }
    typ, data = imap.select(_folder(mailbox.folder, separator))
    if typ != "OK":
        raise PollError(_("There is no folder %(folder)s on the mail server.", folder=mailbox.folder))
    uidvalidity = _uidvalidity(imap)
    capabilities = _capabilities(imap)
    typ, data = imap.uid("SEARCH", None, "UNDELETED")
    uids = sorted(int(u) for u in (data[0] or b"").split()) if typ == "OK" and data else []
    for uid in uids:
        typ, data = imap.uid("FETCH", str(uid), "(UID RFC822.SIZE BODY.PEEK[HEADER])")
        header, size = _fetched(data)
        if typ != "OK" or header is None:
            # Stop here rather than skip it: the next poll starts again with this message.
            raise PollError(_("The mail server did not give message %(uid)s: the next poll tries again.", uid=uid))
        counter_email = _known(header)
        created = False
        if counter_email is None and size is not None and size > emails.MAX_RAW:
            counter_email, created = emails.receive(
                header, mailbox_id=mailbox_id, uidvalidity=uidvalidity, uid=uid, size=size
            )
        elif counter_email is None:
            typ, data = imap.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
            raw, _size = _fetched(data)
            if typ != "OK" or raw is None:
                raise PollError(_("The mail server did not give message %(uid)s: the next poll tries again.", uid=uid))
            counter_email, created = emails.receive(raw, mailbox_id=mailbox_id, uidvalidity=uidvalidity, uid=uid)
        result.fetched += 1
        became_reading = counter_email.state in emails.READ_STATES
        mailbox = db.session.get(Mailbox, mailbox_id)
        state = {"uidvalidity": uidvalidity, "last_uid": max(uid, mailbox.last_uid or 0)}
        if not created:
            result.duplicates += 1
        elif became_reading:
            result.processed += 1
            state["processed_count"] = (mailbox.processed_count or 0) + 1
        else:
            result.unmatched += 1
            state["unmatched_count"] = (mailbox.unmatched_count or 0) + 1
        set_poll_state(mailbox, **state)
        db.session.commit()
        _move(
            imap,
            uid,
            targets["processed" if became_reading else "unmatched"],
            "MOVE" in capabilities,
            "UIDPLUS" in capabilities,
        )


def _text(error: BaseException) -> str:
    text = error.args[0] if error.args else str(error)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text)[:300] or type(error).__name__


def _connect_error(error: BaseException) -> str:
    if isinstance(error, SealBroken):
        return _("The stored password cannot be read (the secret key changed): enter it again.")
    if isinstance(error, ssl.SSLCertVerificationError):
        return _("The mail server's certificate is not trusted: %(error)s", error=error.verify_message or _text(error))
    if isinstance(error, ssl.SSLError):
        return _("The TLS connection to the mail server failed: %(error)s", error=_text(error))
    if isinstance(error, socket.timeout | TimeoutError):
        return _("The mail server did not answer in time.")
    if isinstance(error, imaplib.IMAP4.error):
        return _("The mail server refused the login: %(error)s", error=_text(error))
    return _("The mail server cannot be reached: %(error)s", error=_text(error))


def _failed(mailbox_id: int, result: PollResult, message: str) -> PollResult:
    mailbox = db.session.get(Mailbox, mailbox_id)
    set_poll_state(mailbox, last_polled_at=utcnow(), last_error=message)
    db.session.commit()
    result.error = message
    return result
