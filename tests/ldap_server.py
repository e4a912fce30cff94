"""An OpenLDAP server of the tests' own (Debian's slapd, a throw-away cn=config on a free port), seeded with LDIF."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.smtp_server import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib/aarch64-linux-gnu/ldap")

BASE_DN = "dc=copydesk,dc=test"
PEOPLE_DN = f"ou=people,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
# The account a customer's directory settings bind with to search for users (read-only). Like a real site's, it has
# no size limit: OpenLDAP otherwise stops any search, paged or not, at 500 entries (sizeLimitExceeded).
SERVICE_DN = f"cn=copydesk,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "service-secret"
# A service account the server answers at most LIMITED_SIZE entries per search (a directory's size limit).
LIMITED_DN = f"cn=limited,ou=services,{BASE_DN}"
LIMITED_PASSWORD = "limited-secret"
LIMITED_SIZE = 2


def _module_path() -> str:
    return next((path for path in MODULE_DIRS if Path(path, "back_mdb.la").exists()), MODULE_DIRS[0])


def _config_ldif(root: Path) -> str:
    """The cn=config of the server: mdb under `root`, the schemas, read access for bound users only.

    `olcAllows: bind_anon_dn` accepts a DN with an empty password as an anonymous bind, as Active Directory does: a
    client that took such a bind for a password check would let anybody in, and the tests would see it.
    """
    schemas = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in SCHEMAS)
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {root}/slapd.pid
olcArgsFile: {root}/slapd.args
olcAllows: bind_anon_dn

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {_module_path()}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PASSWORD}
olcDbDirectory: {root}/data
olcDbMaxSize: 67108864
olcDbNoSync: TRUE
olcLimits: {{0}}dn.exact="{LIMITED_DN}" size={LIMITED_SIZE}
olcLimits: {{1}}dn.exact="{SERVICE_DN}" size.soft=unlimited size.hard=unlimited size.prtotal=unlimited
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"""


def _base_ldif() -> str:
    return f"""\
dn: {BASE_DN}
objectClass: dcObject
objectClass: organization
dc: copydesk
o: Copydesk Test

dn: ou=services,{BASE_DN}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: copydesk
userPassword: {SERVICE_PASSWORD}

dn: {LIMITED_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: limited
userPassword: {LIMITED_PASSWORD}

{_people_ldif()}"""


def _people_ldif() -> str:
    return f"""\
dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people
"""


def person_ldif(
    uid: str,
    password: str,
    cn: str,
    *,
    mail: str | None = None,
    department: str | None = None,
    cards: tuple[str, ...] = (),
    parent: str = PEOPLE_DN,
) -> str:
    """One inetOrgPerson entry: `department` goes into departmentNumber, `cards` into carLicense.

    carLicense is a multi-valued string attribute of inetOrgPerson: sites without a schema of their own for badge
    numbers put them in such a spare attribute, and the directory settings name it (`card_attribute`).
    """
    lines = [
        f"dn: uid={uid},{parent}",
        "objectClass: inetOrgPerson",
        f"uid: {uid}",
        f"cn: {cn}",
        f"sn: {cn.split()[-1] if cn.split() else uid}",
        f"userPassword: {password}",
    ]
    if mail:
        lines.append(f"mail: {mail}")
    if department:
        lines.append(f"departmentNumber: {department}")
    lines += [f"carLicense: {card}" for card in cards]
    return "\n".join(lines) + "\n"


class LdapServer:
    """slapd with a cn=config made by `slapadd -n0` in a temporary folder; `stop()` / `start()` keep its data."""

    base_dn = BASE_DN
    people_dn = PEOPLE_DN
    admin_dn = ADMIN_DN
    admin_password = ADMIN_PASSWORD
    service_dn = SERVICE_DN
    service_password = SERVICE_PASSWORD
    limited_dn = LIMITED_DN
    limited_password = LIMITED_PASSWORD

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="copydesk-ldap-"))
        self.config_dir = self.root / "slapd.d"
        self.config_dir.mkdir()
        (self.root / "data").mkdir()
        self.log = self.root / "slapd.log"
        self._process: subprocess.Popen | None = None
        config = self.root / "config.ldif"
        config.write_text(_config_ldif(self.root), encoding="utf-8")
        self._run([SLAPADD, "-n0", "-F", str(self.config_dir), "-l", str(config)])
        base = self.root / "base.ldif"
        base.write_text(_base_ldif(), encoding="utf-8")
        self._run([SLAPADD, "-n1", "-F", str(self.config_dir), "-l", str(base)])

    @staticmethod
    def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def start(self) -> None:
        # `-d 0` keeps slapd in the foreground, as our child: stop() ends exactly this process.
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [SLAPD, "-d", "0", "-h", f"{self.url}/", "-F", str(self.config_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self._process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"slapd did not listen on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server: the port refuses connections until `start()` again (the data is kept)."""
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

    def apply(self, ldif: str) -> None:
        """Apply LDIF as the directory's administrator: plain entries are added, `changetype:` records done."""
        self._run(
            ["ldapmodify", "-a", "-x", "-H", self.url, "-D", self.admin_dn, "-w", self.admin_password],
            stdin=ldif,
        )

    def add_person(self, uid: str, password: str, cn: str, **attributes) -> str:
        """Add a person under ou=people (see `person_ldif`); return its DN."""
        self.apply(person_ldif(uid, password, cn, **attributes))
        return f"uid={uid},{self.people_dn}"

    def delete(self, dn: str) -> None:
        self.apply(f"dn: {dn}\nchangetype: delete\n")

    def reset(self) -> None:
        """Empty ou=people: every test seeds the people it needs."""
        subprocess.run(
            ["ldapdelete", "-r", "-x", "-H", self.url, "-D", self.admin_dn, "-w", self.admin_password, self.people_dn],
            capture_output=True,
            timeout=60,
        )
        self.apply(_people_ldif())

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def require_slapd() -> None:
    """Skip the test when slapd or ldap-utils are missing (fail with REQUIRE_SERVICES=1)."""
    missing = [tool for tool in (SLAPD, SLAPADD) if not Path(tool).exists()]
    missing += [tool for tool in ("ldapmodify", "ldapdelete") if shutil.which(tool) is None]
    if missing:
        message = f"OpenLDAP is not installed (missing {', '.join(missing)}: apt-get install slapd ldap-utils)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def _ldap_server_process():
    require_slapd()
    server = LdapServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def ldap_server(_ldap_server_process):
    """The session's running slapd with an empty ou=people (and started again if a test stopped it)."""
    server = _ldap_server_process
    if not server.running:
        server.start()
    server.reset()
    yield server
    if not server.running:
        server.start()
