"""A Dovecot IMAP server of the tests' own (Debian's dovecot-imapd): its config, maildir and TLS certificate in a
temporary folder, listening on free 127.0.0.1 ports with implicit TLS (imaps) and STARTTLS (imap), one passwd-file
user. Skipped when dovecot is missing, failed instead with REQUIRE_SERVICES=1 (as tests/ldap_server.py)."""

from __future__ import annotations

import datetime as dt
import getpass
import imaplib
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.smtp_server import free_port

DOVECOT = "/usr/sbin/dovecot"
USER = "counters@dealer.test"
PASSWORD = "imap-secret"
# A second user whose password is not ASCII (IMAP LOGIN cannot send it: AUTHENTICATE PLAIN in UTF-8 can).
UTF8_USER = "letture@dealer.test"
UTF8_PASSWORD = "pässwörd-è"


def _certificates(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for 127.0.0.1 and localhost: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Copydesk test mail CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = root / "ca.pem", root / "server.pem", root / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def _mail_ids() -> tuple[int, int]:
    """The uid/gid the mail processes run as: dovecot never reads mail as root, so root's tests use `nobody`."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _config(root: Path, imap_port: int, imaps_port: int, cert: Path, key: Path) -> str:
    user = getpass.getuser()
    uid, gid = _mail_ids()
    # As root, dovecot drops its login and internal processes to Debian's dovenull/dovecot users; otherwise it runs
    # everything as the user running the tests.
    unprivileged = "" if os.getuid() == 0 else f"default_login_user = {user}\ndefault_internal_user = {user}\n"
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = copydesk-test-{imaps_port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{unprivileged}first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u:LAYOUT=fs
mail_uid = {uid}
mail_gid = {gid}
mail_privileged_group =
namespace inbox {{
  inbox = yes
  separator = /
}}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


class ImapServer:
    """dovecot in the foreground (our child); `host`, `port` (imaps), `starttls_port`, `user`, `password`, `ca_file`."""

    host = "127.0.0.1"
    user = USER
    password = PASSWORD

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="copydesk-imap-"))
        for folder in ("run", "state", "mail", "home"):
            (self.root / folder).mkdir()
        self._give_mail_folders()
        self.root.chmod(0o755)
        self.starttls_port = free_port()
        self.port = free_port()
        self.ca_file, cert, key = _certificates(self.root)
        (self.root / "users").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}\n{UTF8_USER}:{{PLAIN}}{UTF8_PASSWORD}\n", encoding="utf-8"
        )
        self.config = self.root / "dovecot.conf"
        self.config.write_text(_config(self.root, self.starttls_port, self.port, cert, key), encoding="utf-8")
        self.log = self.root / "dovecot.log"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                errors = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"dovecot exited with {self._process.returncode}: {errors}{log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not listen on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, user: str = USER) -> imaplib.IMAP4_SSL:
        """A logged-in client, as a mail program would be: to put messages in and look at the folders."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=10)
        if user == UTF8_USER:
            imap.authenticate("PLAIN", lambda _challenge: f"\0{UTF8_USER}\0{UTF8_PASSWORD}".encode())
        else:
            imap.login(self.user, self.password)
        return imap

    def append(self, raw: bytes, folder: str = "INBOX", user: str = USER) -> None:
        imap = self.client(user)
        try:
            typ, data = imap.append(f'"{folder}"', None, None, raw)
            assert typ == "OK", data
        finally:
            imap.logout()

    def messages(self, folder: str = "INBOX", user: str = USER) -> list[bytes]:
        """The raw messages in `folder` (not deleted), oldest first; [] when the folder does not exist. A folder
        name that is not ASCII is given as the server knows it, in modified UTF-7 ("Letture &AOg-")."""
        imap = self.client(user)
        try:
            typ, _data = imap.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = imap.uid("SEARCH", None, "UNDELETED")
            found = []
            for uid in (data[0] or b"").split():
                typ, fetched = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                found += [part[1] for part in fetched if isinstance(part, tuple)]
            return found
        finally:
            imap.logout()

    def reset(self) -> None:
        """An empty mailbox: the user's maildir removed (dovecot recreates INBOX at the next login)."""
        shutil.rmtree(self.root / "mail", ignore_errors=True)
        (self.root / "mail").mkdir()
        self._give_mail_folders()

    def _give_mail_folders(self) -> None:
        uid, gid = _mail_ids()
        for folder in ("mail", "home"):
            os.chown(self.root / folder, uid, gid)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def require_dovecot() -> None:
    """Skip the test when dovecot is missing (fail with REQUIRE_SERVICES=1)."""
    if not Path(DOVECOT).exists():
        message = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def _imap_server_process():
    require_dovecot()
    server = ImapServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def imap_server(_imap_server_process):
    """The session's running dovecot with an empty mailbox (started again if a test stopped it)."""
    server = _imap_server_process
    if not server.running:
        server.start()
    server.reset()
    yield server
    if not server.running:
        server.start()
