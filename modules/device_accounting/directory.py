"""A customer's LDAP / Active Directory (ldap3): settings, password checks, and the sync of users and departments."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ldap3
import sqlalchemy as sa
from flask_babel import gettext as _
from ldap3.core import exceptions as ldap_errors
from ldap3.operation.search import parse_filter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn
from sqlalchemy.orm import selectinload

from core import jobs
from core.auth.services import normalize_email
from core.crypto import SealBroken, seal, unseal
from core.db import db, utcnow
from core.validation import Checker, ValidationError
from modules.device_accounting.cost_centers import PATH_SEPARATOR, save_cost_center
from modules.device_accounting.models import CostCenter, Directory, PrintUser
from modules.device_accounting.users import add_card, disable_card, save_user, username_key
from modules.rentals.validation import check_customer

log = logging.getLogger(__name__)

SEAL_PURPOSE = "ldap bind password"
# Seconds: a device waits for the answer to a password check, so an unreachable server must fail fast.
CONNECT_TIMEOUT = 5
RECEIVE_TIMEOUT = 10
PAGE_SIZE = 500
MAX_SYNC_HOURS = 24 * 366
# Problems a sync keeps in its result (a user it could not take over, a card already someone else's...).
MAX_PROBLEMS = 50
# A scheduled sync is due this much before its hours have passed, so the hourly job does not drift an hour a day.
DUE_SLACK = dt.timedelta(minutes=5)
PAGED_RESULTS = "1.2.840.113556.1.4.319"
SIZE_LIMIT_EXCEEDED = 4
ROOT_KEY = "directory"
_ATTRIBUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+")
# Active Directory also takes a bind name written user@domain (its userPrincipalName).
_UPN_RE = re.compile(r"[^\s@=,]+@[^\s@=,]+")
_ATTRIBUTES = {
    "username_attribute": "uid",
    "name_attribute": "cn",
    "email_attribute": "mail",
    "department_attribute": "departmentNumber",
    "card_attribute": None,
}
_REQUIRED_ATTRIBUTES = ("username_attribute", "name_attribute", "email_attribute")


class DirectoryUnavailable(Exception):
    """The customer's directory cannot answer now (unreachable, refused the service account, failed a search).

    `message` is for people (translated); nothing was written because of the failed call.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- settings ------------------------------------------------------------------------------------------------------


def directory_of(customer_id: int) -> Directory | None:
    return db.session.scalars(sa.select(Directory).where(Directory.customer_id == customer_id)).first()


def save_directory(customer_id: int, data: dict[str, Any]) -> Directory:
    """Create or change the customer's directory settings; raises ValidationError (nothing written) when wrong.

    Fields: url (ldap:// or ldaps://), start_tls, bind_dn, bind_password, base_dn, user_filter, username_attribute,
    name_attribute, email_attribute, department_attribute, card_attribute, sync_every_hours. A field missing from
    `data` keeps its value. The bind password is sealed (encrypted) at rest and never given back: an empty or missing
    one keeps the stored password, and a bind DN left empty (anonymous search) drops it.
    """
    check = Checker()
    customer = check_customer(check, "customer_id", customer_id, required=True)
    directory = directory_of(customer.id) if customer is not None else None
    creating = directory is None
    values: dict[str, Any] = {}

    def wanted(name: str) -> bool:
        return creating or name in data

    if wanted("url"):
        values["url"] = _check_url(check, data.get("url"))
    if wanted("start_tls"):
        values["start_tls"] = check.boolean("start_tls", data.get("start_tls"), default=False)
    if wanted("base_dn"):
        values["base_dn"] = _check_dn(check, "base_dn", data.get("base_dn"), required=True)
    if wanted("bind_dn"):
        values["bind_dn"] = _check_bind_dn(check, data.get("bind_dn"))
    if wanted("user_filter"):
        values["user_filter"] = _check_filter(check, data.get("user_filter"))
    for name, default in _ATTRIBUTES.items():
        if wanted(name):
            values[name] = _check_attribute(check, name, data.get(name, default), name in _REQUIRED_ATTRIBUTES)
    if wanted("sync_every_hours"):
        hours = data.get("sync_every_hours", 24)
        values["sync_every_hours"] = (
            None if hours is None or hours == "" else check.integer("sync_every_hours", hours, 1, MAX_SYNC_HOURS)
        )
    password = data.get("bind_password")
    if password is not None and not isinstance(password, str):
        check.fail("bind_password", _("The password must be text."))
    elif password and ("\x00" in password or len(password) > 256):
        check.fail("bind_password", _("At most %(max)d characters, without NUL characters.", max=256))
    url = values.get("url", None if creating else directory.url)
    start_tls = values.get("start_tls", False if creating else directory.start_tls)
    if url and start_tls and urlsplit(url).scheme.lower() == "ldaps":
        check.fail("start_tls", _("An ldaps:// address is encrypted already: StartTLS is only for ldap://."))
    check.raise_if_any()
    assert customer is not None

    if creating:
        directory = Directory(customer_id=customer.id)
        db.session.add(directory)
    for name, value in values.items():
        setattr(directory, name, value)
    if not directory.bind_dn:
        directory.bind_password_sealed = None
    elif password:
        directory.bind_password_sealed = seal(password, SEAL_PURPOSE)
    db.session.flush()
    if creating:
        # An INSERT leaves out None for a column with a default (sync_every_hours 24, departmentNumber): set them.
        for name, value in values.items():
            if value is None and getattr(directory, name) is not None:
                setattr(directory, name, None)
        db.session.flush()
    return directory


def directory_dict(directory: Directory) -> dict[str, Any]:
    """The settings as the API and the pages show them: the bind password only as "set" or not."""
    return {
        "id": directory.id,
        "customer_id": directory.customer_id,
        "url": directory.url,
        "start_tls": directory.start_tls,
        "bind_dn": directory.bind_dn,
        "bind_password_set": bool(directory.bind_password_sealed),
        "base_dn": directory.base_dn,
        "user_filter": directory.user_filter,
        **{name: getattr(directory, name) for name in _ATTRIBUTES},
        "sync_every_hours": directory.sync_every_hours,
        "last_sync_at": directory.last_sync_at,
        "last_sync_result": sync_summary(directory),
    }


def sync_summary(directory: Directory) -> dict[str, Any] | None:
    """The last sync's result without the bookkeeping it keeps for the next one."""
    result = directory.last_sync_result
    if not result:
        return None
    return {key: value for key, value in result.items() if key != "absent_user_ids"}


def _check_url(check: Checker, value: Any) -> str | None:
    text = check.text("url", value, 300, required=True)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in ("ldap", "ldaps")
        or not parts.hostname
        or parts.username
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        check.fail(
            "url",
            _(
                "Write the server as ldap://host[:port] or ldaps://host[:port], e.g. %(example)s.",
                example="ldaps://dc1.example.local:636",
            ),
        )
        return None
    scheme = parts.scheme.lower()
    return f"{scheme}://{parts.hostname}" + (f":{port}" if port else "")


def _check_dn(check: Checker, field: str, value: Any, required: bool) -> str | None:
    text = check.text(field, value, 500, required=required)
    if text is None:
        return None
    try:
        parse_dn(text)
    except (ldap_errors.LDAPInvalidDnError, ValueError):
        check.fail(field, _("Not a distinguished name (DN), e.g. %(example)s.", example="dc=example,dc=local"))
        return None
    return text


def _check_bind_dn(check: Checker, value: Any) -> str | None:
    text = check.text("bind_dn", value, 500)
    if text is None or _UPN_RE.fullmatch(text):
        return text
    return _check_dn(check, "bind_dn", text, required=False)


def _check_filter(check: Checker, value: Any) -> str | None:
    text = check.text("user_filter", value, 500) or "(objectClass=person)"
    if not text.startswith("("):
        text = f"({text})"
    try:
        parse_filter(text, None, False, False, None, False)
    except (ldap_errors.LDAPInvalidFilterError, ldap_errors.LDAPException, ValueError, IndexError):
        check.fail("user_filter", _("Not an LDAP filter, e.g. %(example)s.", example="(objectClass=person)"))
        return None
    return text


def _check_attribute(check: Checker, field: str, value: Any, required: bool) -> str | None:
    text = check.text(field, value, 60, required=required)
    if text is None:
        return None
    if not _ATTRIBUTE_RE.fullmatch(text):
        check.fail(field, _("Not an attribute name: letters, digits and hyphens, starting with a letter."))
        return None
    return text


# --- talking to the server -----------------------------------------------------------------------------------------


def _server(directory: Directory) -> ldap3.Server:
    parts = urlsplit(directory.url)
    use_ssl = parts.scheme.lower() == "ldaps"
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED) if use_ssl or directory.start_tls else None
    return ldap3.Server(
        parts.hostname,
        port=parts.port or (636 if use_ssl else 389),
        use_ssl=use_ssl,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=CONNECT_TIMEOUT,
    )


def _unreachable(directory: Directory, error: Exception) -> DirectoryUnavailable:
    reason = str(error).strip() or type(error).__name__
    log.warning("directory %s of customer %s unreachable: %s", directory.url, directory.customer_id, reason)
    return DirectoryUnavailable(
        _("The directory server %(url)s cannot be reached: %(reason)s", url=directory.url, reason=reason[:200])
    )


def _open(directory: Directory, user: str | None, password: str | None) -> ldap3.Connection:
    """A connection opened (StartTLS done) but not bound yet; DirectoryUnavailable when the server cannot be reached."""
    connection = ldap3.Connection(
        _server(directory),
        user=user,
        password=password,
        authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
        receive_timeout=RECEIVE_TIMEOUT,
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
    )
    try:
        connection.open()
        if directory.start_tls and not connection.start_tls():
            raise ldap_errors.LDAPStartTLSError(connection.result.get("description") or "StartTLS refused")
    except (ldap_errors.LDAPException, OSError) as error:
        _close(connection)
        raise _unreachable(directory, error) from None
    return connection


def _close(connection: ldap3.Connection) -> None:
    with contextlib.suppress(ldap_errors.LDAPException, OSError):
        connection.unbind()


def _service_connection(directory: Directory) -> ldap3.Connection:
    """Bound as the directory's service account (or anonymously without a bind DN)."""
    password = None
    if directory.bind_dn:
        try:
            password = unseal(directory.bind_password_sealed, SEAL_PURPOSE) if directory.bind_password_sealed else ""
        except SealBroken:
            raise DirectoryUnavailable(
                _("The directory's bind password cannot be read any more (the secret key changed): enter it again.")
            ) from None
        if not password:
            raise DirectoryUnavailable(_("The directory has a bind DN but no bind password: enter it."))
    connection = _open(directory, directory.bind_dn, password)
    try:
        bound = connection.bind()
    except (ldap_errors.LDAPException, OSError) as error:
        _close(connection)
        raise _unreachable(directory, error) from None
    if not bound:
        description = connection.result.get("description") or ""
        _close(connection)
        raise DirectoryUnavailable(
            _(
                "The directory server refused the service account %(dn)s (%(reason)s): check the bind DN and password.",
                dn=directory.bind_dn or _("anonymous"),
                reason=description,
            )
        )
    return connection


def _search_failed(directory: Directory, result: dict) -> DirectoryUnavailable:
    description = result.get("description") or str(result.get("result"))
    message = result.get("message") or ""
    log.warning("directory %s search failed: %s %s", directory.url, description, message)
    return DirectoryUnavailable(
        _(
            "The directory server did not answer the whole search under %(base)s (%(reason)s): nothing was changed.",
            base=directory.base_dn,
            reason=description,
        )
    )


def _search(connection: ldap3.Connection, directory: Directory, query: str, attributes: list[str], **options):
    """Every entry the search finds, page by page; DirectoryUnavailable unless the server answered all of it."""
    cookie = None
    while True:
        try:
            connection.search(
                directory.base_dn,
                query,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=options.get("paged_size", PAGE_SIZE),
                paged_cookie=cookie,
                size_limit=options.get("size_limit", 0),
                time_limit=RECEIVE_TIMEOUT,
            )
        except (ldap_errors.LDAPException, OSError) as error:
            raise _unreachable(directory, error) from None
        result = connection.result
        if result.get("result") != 0:
            raise _search_failed(directory, result)
        entries = [entry for entry in connection.response or () if entry.get("type") == "searchResEntry"]
        yield from entries
        cookie = result.get("controls", {}).get(PAGED_RESULTS, {}).get("value", {}).get("cookie")
        if not cookie:
            return


def _user_query(directory: Directory, username: str) -> str:
    return f"(&{directory.user_filter}({directory.username_attribute}={escape_filter_chars(username)}))"


def authenticate(customer_id: int, username: str, password: str) -> bool:
    """Whether the customer's directory takes this username and password.

    The service account finds the user's DN (the username escaped in the filter), then a bind as that DN checks the
    password. An empty password is refused before asking: an LDAP bind with a DN and no password is an anonymous
    bind, which many servers (Active Directory) answer with success. False for an unknown or ambiguous user or a
    wrong password; DirectoryUnavailable when the server cannot answer.
    """
    username = (username or "").strip()
    if not username or not isinstance(password, str) or not password:
        return False
    directory = directory_of(customer_id)
    if directory is None:
        return False
    service = _service_connection(directory)
    try:
        # Two entries are enough to know the username is ambiguous.
        service.search(
            directory.base_dn,
            _user_query(directory, username),
            search_scope=ldap3.SUBTREE,
            attributes=["1.1"],
            size_limit=2,
            time_limit=RECEIVE_TIMEOUT,
        )
        result = service.result
        found = [entry["dn"] for entry in service.response or () if entry.get("type") == "searchResEntry"]
    except (ldap_errors.LDAPException, OSError) as error:
        raise _unreachable(directory, error) from None
    finally:
        _close(service)
    if result.get("result") not in (0, SIZE_LIMIT_EXCEEDED):
        raise _search_failed(directory, result)
    if len(found) != 1:
        if found:
            log.warning("directory %s: a username matches several entries", directory.url)
        return False
    connection = _open(directory, found[0], password)
    try:
        return bool(connection.bind())
    except (ldap_errors.LDAPPasswordIsMandatoryError, ldap_errors.LDAPSASLPrepError):
        return False  # not a password a directory could hold
    except (ldap_errors.LDAPException, OSError) as error:
        raise _unreachable(directory, error) from None
    finally:
        _close(connection)


def test_connection(directory: Directory) -> str | None:
    """None when the service account binds and finds the base DN; else what went wrong, for people."""
    try:
        connection = _service_connection(directory)
    except DirectoryUnavailable as error:
        return error.message
    try:
        try:
            connection.search(directory.base_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"])
        except (ldap_errors.LDAPException, OSError) as error:
            return _unreachable(directory, error).message
        if connection.result.get("result") != 0:
            return _(
                "The base DN %(base)s was not found on the directory server (%(reason)s).",
                base=directory.base_dn,
                reason=connection.result.get("description") or "",
            )
        return None
    finally:
        _close(connection)


# --- sync ----------------------------------------------------------------------------------------------------------


@dataclass
class DirectoryPerson:
    """One user as the directory has it."""

    dn: str
    username: str
    full_name: str
    email: str | None
    department: str | None
    cards: list[str] = field(default_factory=list)


def _first(attributes: Any, name: str | None) -> str | None:
    values = _values(attributes, name)
    return values[0] if values else None


def _values(attributes: Any, name: str | None) -> list[str]:
    if not name:
        return []
    raw = attributes.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raw = [raw]
    texts = []
    for value in raw:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        text = text.replace("\x00", "").strip()
        if text:
            texts.append(text)
    return texts


def read_people(directory: Directory) -> list[DirectoryPerson]:
    """Every user the directory's filter finds, read whole before anything is written (DirectoryUnavailable if not)."""
    attributes = [directory.username_attribute, directory.name_attribute, directory.email_attribute]
    attributes += [name for name in (directory.department_attribute, directory.card_attribute) if name]
    connection = _service_connection(directory)
    try:
        entries = list(_search(connection, directory, directory.user_filter, attributes))
    finally:
        _close(connection)
    people = []
    for entry in entries:
        found = entry.get("attributes") or {}
        username = _first(found, directory.username_attribute)
        people.append(
            DirectoryPerson(
                dn=entry["dn"],
                username=username or "",
                full_name=_first(found, directory.name_attribute) or username or "",
                email=_first(found, directory.email_attribute),
                department=_first(found, directory.department_attribute),
                cards=_values(found, directory.card_attribute),
            )
        )
    return people


class _Sync:
    """One sync of a directory into its customer's print users and cost centers (in the caller's transaction)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.customer_id = directory.customer_id
        self.counts = {"created": 0, "updated": 0, "deactivated": 0, "cost_centers": 0}
        self.problems: list[str] = []
        self._root: CostCenter | None = None
        self._departments: dict[str, CostCenter] = {}

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    # Cost centers: one root per directory, one child per department, both found again by `directory_key`.

    def _children(self, parent_id: int | None) -> list[CostCenter]:
        parent = CostCenter.parent_id.is_(None) if parent_id is None else CostCenter.parent_id == parent_id
        return list(
            db.session.scalars(
                sa.select(CostCenter).where(CostCenter.customer_id == self.customer_id, parent).order_by(CostCenter.id)
            )
        )

    def root(self) -> CostCenter:
        if self._root is not None:
            return self._root
        key = f"{ROOT_KEY}:{self.directory.id}"
        root = db.session.scalars(
            sa.select(CostCenter).where(CostCenter.customer_id == self.customer_id, CostCenter.directory_key == key)
        ).first()
        if root is None:
            name = _("Directory departments")
            root = next((c for c in self._children(None) if c.name.casefold() == name.casefold()), None)
            if root is None:
                root = save_cost_center(self.customer_id, {"name": name})
                self.counts["cost_centers"] += 1
            root.directory_key = key
        if not root.active:
            root.active = True
        db.session.flush()
        self._root = root
        self._departments = {center.directory_key: center for center in self._children(root.id) if center.directory_key}
        return root

    def department(self, name: str) -> CostCenter:
        """The cost center of a department (the value compared ignoring case), created under the root if missing."""

        root = self.root()
        key = name.casefold()[:200]
        center = self._departments.get(key)
        if center is None:
            shown = name.replace(PATH_SEPARATOR, "-").strip()[:100]
            center = next((c for c in self._children(root.id) if c.name.casefold() == shown.casefold()), None)
            if center is None:
                center = save_cost_center(self.customer_id, {"name": shown, "parent_id": root.id})
                self.counts["cost_centers"] += 1
            center.directory_key = key
            self._departments[key] = center
        if not center.active:
            center.active = True
        db.session.flush()
        return center

    # Users.

    def run(self, people: list[DirectoryPerson]) -> dict[str, Any]:
        existing = {
            user.username_key: user
            for user in db.session.scalars(
                sa.select(PrintUser)
                .where(PrintUser.customer_id == self.customer_id)
                .options(selectinload(PrintUser.cards), selectinload(PrintUser.cost_centers))
            )
        }
        previous = self.directory.last_sync_result or {}
        # The users an earlier sync deactivated for missing from the directory: they come back active.
        absent_before = set(previous.get("absent_user_ids") or ())
        if self.directory.department_attribute:
            self.root()
        seen: set[str] = set()
        for person in people:
            if not person.username:
                self.problem(
                    _(
                        "%(dn)s has no %(attribute)s: skipped.",
                        dn=person.dn,
                        attribute=self.directory.username_attribute,
                    )
                )
                continue
            key = username_key(person.username)
            if key in seen:
                self.problem(
                    _("%(username)s is in the directory twice: %(dn)s skipped.", username=person.username, dn=person.dn)
                )
                continue
            seen.add(key)
            self.person(person, existing.get(key), absent_before)
        absent = set()
        for key, user in existing.items():
            if not user.directory_user or key in seen:
                continue
            if user.id in absent_before:
                absent.add(user.id)
            elif user.active:
                # Deactivated, never deleted: the user's jobs stay theirs. One deactivated by hand stays so.
                user.active = False
                absent.add(user.id)
                self.counts["deactivated"] += 1
        db.session.flush()
        return {**self.counts, "problems": self.problems, "absent_user_ids": sorted(absent)}

    def person(self, person: DirectoryPerson, user: PrintUser | None, absent_before: set[int]) -> None:
        """Create or update one user; a refusal (a card or an email someone else has) is noted and the rest goes on."""

        center = None
        if person.department:
            try:
                center = self.department(person.department)
            except ValidationError as error:
                self.problem(f"{person.department}: {error.messages()}")
        data = self.changes(person, user, center, absent_before)
        creating = user is None
        savepoint = db.session.begin_nested()
        try:
            changed = False
            if data:
                user, changed = _save_user(save_user, self.customer_id, data, user, self.problem, person.username)
            if not user.directory_user or user.directory_dn != person.dn[:500]:
                user.directory_user, user.directory_dn = True, person.dn[:500]
                changed = True
            if self.directory.card_attribute:
                changed = self.cards(user, person, creating) or changed
            db.session.flush()
        except ValidationError as error:
            savepoint.rollback()
            self.problem(f"{person.username}: {error.messages()}")
            return
        savepoint.commit()
        if creating:
            self.counts["created"] += 1
        elif changed:
            self.counts["updated"] += 1

    def changes(
        self, person: DirectoryPerson, user: PrintUser | None, center: CostCenter | None, absent_before: set[int]
    ) -> dict[str, Any]:
        """What save_user must change for the user to match the directory (everything for a new user)."""
        data: dict[str, Any] = {"full_name": person.full_name[:200], "email": person.email}
        if user is None:
            data["username"] = person.username[:100]
        if user is None or user.id in absent_before:
            data["active"] = True
        managed = {c.id for c in self._departments.values()}
        current = [] if user is None else [c.id for c in user.cost_centers]
        wanted = [center_id for center_id in current if center_id not in managed] + ([center.id] if center else [])
        old_default = None if user is None else user.default_cost_center_id
        # The department is the default cost center, unless staff chose another one that is not a department.
        default = (center.id if center else None) if old_default is None or old_default in managed else old_default
        if user is None or sorted(wanted) != sorted(current) or default != old_default:
            data["cost_center_ids"], data["default_cost_center_id"] = wanted, default
        if user is not None:
            data = {name: value for name, value in data.items() if not _same(user, name, value)}
        return data

    def cards(self, user: PrintUser, person: DirectoryPerson, new: bool) -> bool:
        """The directory lists the user's cards: add or enable those it has, disable the others. True if any changed."""

        changed = False
        wanted = list(dict.fromkeys(person.cards))
        # A user just created has no cards: no need to load them.
        active = set() if new else {card.number for card in user.cards if card.active}
        for number in wanted:
            if number in active:
                continue
            try:
                add_card(user, number, field="cards")
            except ValidationError as error:
                self.problem(f"{person.username}: {error.messages()}")
                continue
            changed = True
        for card in [] if new else list(user.cards):
            if card.active and card.number not in wanted:
                disable_card(card)
                changed = True
        return changed


def _same(user: PrintUser, name: str, value: Any) -> bool:
    if name == "email":
        if not value:
            return not user.email
        try:
            value = normalize_email(value)
        except ValidationError:
            return False
    if name in ("cost_center_ids", "default_cost_center_id"):
        return False
    return getattr(user, name) == value


def _save_user(
    save_user, customer_id: int, data: dict, user: PrintUser | None, problem, username: str
) -> tuple[PrintUser, bool]:
    """(the user, whether anything changed) after save_user; an email the directory has but Copydesk refuses
    (malformed, another user's) is left out and noted."""
    try:
        return save_user(customer_id, data, user), True
    except ValidationError as error:
        if "email" not in error.errors or not data.get("email"):
            raise
        problem(f"{username}: {error.errors['email']}")
        retry = {name: value for name, value in data.items() if name != "email"}
        if user is None:
            retry["email"] = None
        return (save_user(customer_id, retry, user), True) if retry else (user, False)


def sync(directory: Directory) -> dict[str, Any]:
    """Read the directory's users and bring the customer's print users and cost centers in line; return the counts
    {created, updated, deactivated, cost_centers} (and the problems met). The caller commits.

    Everything is read before anything is written: a server that fails, or answers only part (a size limit), raises
    DirectoryUnavailable and changes nothing. Users missing from the directory are deactivated, never deleted (their
    jobs stay theirs); departments become cost centers under one root per directory (found again by their
    `directory_key`).
    """
    people = read_people(directory)
    result = _Sync(directory).run(people)
    counts = {key: result[key] for key in ("created", "updated", "deactivated", "cost_centers")}
    directory.last_sync_at = utcnow()
    directory.last_sync_result = {
        "status": "ok",
        "at": directory.last_sync_at.isoformat(),
        **counts,
        "users": len(people),
        "problems": result["problems"],
        "absent_user_ids": result["absent_user_ids"],
    }
    db.session.flush()
    log.info("directory %s of customer %s synced: %s", directory.url, directory.customer_id, counts)
    return {**counts, "problems": result["problems"]}


def run_sync(directory_id: int, raise_errors: bool = False) -> dict[str, Any] | None:
    """Sync one directory in a transaction of its own, committed; a failure is rolled back and recorded on the
    directory (last_sync_result status "failed" with the message), then raised when `raise_errors`."""
    directory = db.session.get(Directory, directory_id)
    if directory is None:
        return None
    try:
        result = sync(directory)
        db.session.commit()
        return result
    except Exception as error:
        db.session.rollback()
        message = error.message if isinstance(error, DirectoryUnavailable) else str(error)[:500]
        if not isinstance(error, DirectoryUnavailable):
            log.exception("directory %s sync failed", directory_id)
        _record_failure(directory_id, message)
        if raise_errors:
            raise
        return None


def _record_failure(directory_id: int, message: str) -> None:
    try:
        directory = db.session.get(Directory, directory_id)
        if directory is None:
            return
        previous = directory.last_sync_result or {}
        directory.last_sync_at = utcnow()
        directory.last_sync_result = {
            "status": "failed",
            "at": directory.last_sync_at.isoformat(),
            "error": message,
            "absent_user_ids": previous.get("absent_user_ids") or [],
        }
        db.session.commit()
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        log.exception("the failure of directory %s's sync was not recorded", directory_id)


def due(directory: Directory, now: dt.datetime) -> bool:
    """Whether the scheduled sync is due: never synced, the last one failed, or its hours have passed."""
    if directory.sync_every_hours is None:
        return False
    if directory.last_sync_at is None or (directory.last_sync_result or {}).get("status") != "ok":
        return True
    last = directory.last_sync_at
    last = last.replace(tzinfo=dt.UTC) if last.tzinfo is None else last
    return last + dt.timedelta(hours=directory.sync_every_hours) - DUE_SLACK <= now


def sync_due(now: dt.datetime) -> int:
    """Sync every directory whose scheduled sync is due, each in its own committed transaction: one that fails is
    rolled back and recorded (last_sync_result), and the others still run. Return how many synced."""
    ids = db.session.scalars(
        sa.select(Directory.id).where(Directory.sync_every_hours.is_not(None)).order_by(Directory.id)
    ).all()
    db.session.rollback()
    synced = 0
    for directory_id in ids:
        directory = db.session.get(Directory, directory_id)
        if directory is None or not due(directory, now):
            db.session.rollback()
            continue
        if run_sync(directory_id) is not None:
            synced += 1
    return synced


def sync_job_id(directory_id: int) -> str:
    return f"device-accounting-directory-sync:{directory_id}"


def sync_now(directory_id: int) -> str:
    """Start a sync of the directory now, as a background job (inline without Redis); return the job's id.

    Call it after your commit. Its status (queued, running, done, failed with the message) is `sync_status`, and
    the outcome is on the directory (`last_sync_result`); a sync already queued or running is not started twice.
    """
    from modules.device_accounting.jobs import sync_directory

    return jobs.enqueue(sync_directory, directory_id, job_id=sync_job_id(directory_id))


def sync_status(directory_id: int) -> str | None:
    """The status of the directory's last on-demand sync job (queued, running, done, failed), None if never run."""
    return jobs.job_status(sync_job_id(directory_id))
