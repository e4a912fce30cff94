"""Password checks against a real slapd: right, wrong, empty, unknown, injected usernames, and a server that is down."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from core.db import db
from modules.device_accounting import directory as ldap_directory
from modules.device_accounting.directory import DirectoryUnavailable, authenticate
from modules.device_accounting.tests import directory_support as s


@pytest.fixture
def anna(db_session, ldap_server):
    """A customer whose directory holds one person, anna (so an injected wildcard would find exactly her)."""
    ldap_server.add_person("anna", "Anna-Pw-1", "Anna Rossi", mail="anna@bianchi.it", department="Vendite")
    return s.directory_for(ldap_server)


def test_the_right_password_is_taken_and_a_wrong_one_refused(anna):
    assert authenticate(anna.customer_id, "anna", "Anna-Pw-1") is True
    assert authenticate(anna.customer_id, "ANNA", "Anna-Pw-1") is True  # uid matches ignoring case
    assert authenticate(anna.customer_id, "anna", "anna-pw-1") is False
    assert authenticate(anna.customer_id, "anna", "Anna-Pw-1 ") is False


def test_an_empty_password_is_refused_although_the_server_takes_it_as_anonymous(anna, ldap_server):
    # The trap is real on this server, as on Active Directory: a DN with no password binds (anonymously).
    whoami = subprocess.run(
        ["ldapwhoami", "-x", "-H", ldap_server.url, "-D", f"uid=anna,{ldap_server.people_dn}", "-w", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert whoami.returncode == 0, whoami.stderr
    assert authenticate(anna.customer_id, "anna", "") is False
    assert authenticate(anna.customer_id, "anna", None) is False


def test_an_unknown_user_is_refused(anna):
    assert authenticate(anna.customer_id, "bruno", "Anna-Pw-1") is False
    assert authenticate(anna.customer_id, "", "Anna-Pw-1") is False


@pytest.mark.parametrize("username", ["*)(uid=*", "*", "ann*", "anna)(|(uid=*", "*)(objectClass=*"])
def test_filter_injection_finds_nobody(anna, username):
    # Unescaped, each of these would select anna, and her password would let the caller in under another name.
    assert authenticate(anna.customer_id, username, "Anna-Pw-1") is False


def test_usernames_with_filter_characters_are_escaped_not_refused(db_session, ldap_server):
    ldap_server.add_person("dr(who)*", "Tardis-42", "The Doctor")
    ldap_server.add_person("dr", "Other-1", "Doctor Other")
    found = s.directory_for(ldap_server)
    assert authenticate(found.customer_id, "dr(who)*", "Tardis-42") is True
    assert authenticate(found.customer_id, "dr(who)*", "Other-1") is False


def test_a_username_two_entries_share_is_refused(db_session, ldap_server):
    ldap_server.apply(f"dn: ou=branch,{ldap_server.people_dn}\nobjectClass: organizationalUnit\nou: branch\n")
    ldap_server.add_person("marco", "Same-Pw-1", "Marco Verdi")
    ldap_server.add_person("marco", "Same-Pw-1", "Marco Neri", parent=f"ou=branch,{ldap_server.people_dn}")
    found = s.directory_for(ldap_server)
    assert authenticate(found.customer_id, "marco", "Same-Pw-1") is False


def test_a_customer_without_a_directory_is_refused(db_session):
    partner = s.customer()
    assert authenticate(partner.id, "anna", "Anna-Pw-1") is False


def test_a_refused_service_account_says_so(anna):
    ldap_directory.save_directory(anna.customer_id, {"bind_password": "not-the-password"})
    with pytest.raises(DirectoryUnavailable) as error:
        authenticate(anna.customer_id, "anna", "Anna-Pw-1")
    assert "refused the service account" in error.value.message
    assert "not-the-password" not in error.value.message


def test_a_server_that_is_down_raises_directory_unavailable_quickly(anna, ldap_server):
    ldap_server.stop()
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable) as error:
        authenticate(anna.customer_id, "anna", "Anna-Pw-1")
    assert time.monotonic() - started < ldap_directory.CONNECT_TIMEOUT + 2
    assert "cannot be reached" in error.value.message and ldap_server.url in error.value.message
    ldap_server.start()
    assert authenticate(anna.customer_id, "anna", "Anna-Pw-1") is True


def test_a_server_that_accepts_but_never_answers_times_out(db_session, monkeypatch):
    """A hung server (a listener that takes the connection and says nothing) fails after the receive timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setattr(ldap_directory, "RECEIVE_TIMEOUT", 1)
    try:
        partner = s.customer()
        url = f"ldap://127.0.0.1:{listener.getsockname()[1]}"
        ldap_directory.save_directory(
            partner.id,
            {"url": url, "base_dn": "dc=hung,dc=test", "bind_dn": "cn=svc,dc=hung,dc=test", "bind_password": "x1"},
        )
        db.session.commit()
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable) as error:
            authenticate(partner.id, "anna", "Anna-Pw-1")
        assert time.monotonic() - started < 5
        assert url in error.value.message
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def test_test_connection_reports_what_is_wrong(anna, ldap_server):
    assert ldap_directory.test_connection(anna) is None
    ldap_directory.save_directory(anna.customer_id, {"base_dn": f"ou=nowhere,{ldap_server.base_dn}"})
    assert "was not found" in ldap_directory.test_connection(anna)
    ldap_server.stop()
    assert "cannot be reached" in ldap_directory.test_connection(anna)
