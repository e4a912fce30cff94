"""SNMP agents of the tests' own: snmpsim serving the project's .snmprec recordings on a free 127.0.0.1 UDP port.

Each recording answers to the SNMPv2c community named after its file (`kyocera.snmprec` -> community `kyocera`);
`V3_RECORDING` also answers SNMPv3 (user `V3_USER`, SHA/AES) with an empty context, as a real device does.

snmpsim lives in its own virtualenv (`make install-dev` builds `.venv/snmpsim`, pins in requirements-snmpsim.txt):
its pysnmp and pysmi stay out of the app's environment. As root it would drop to nobody, who cannot read a Python
under /root; `SNMPSIM_ALLOW_ROOT=true` (snmpsim's own switch) keeps it as the user that started it, and it reads
its copy of the recordings and writes its index in a temporary folder of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "modules" / "metering_channels" / "tests" / "data" / "snmp"
SNMPSIM_ENV = "SNMPSIM_COMMAND"
DEFAULT_COMMAND = ROOT / ".venv" / "snmpsim" / "bin" / "snmpsim-command-responder"
V3_RECORDING = "ricoh"
V3_USER = "copydesk"
V3_AUTH_KEY = "auth-secret-123"
V3_PRIV_KEY = "priv-secret-456"


async def _answers(host: str, port: int) -> bool:
    """Whether the agent answers sysObjectID to the community of one recording."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    engine = SnmpEngine()
    try:
        transport = await UdpTransportTarget.create((host, port), timeout=0.5, retries=0)
        error, status, _index, _binds = await get_cmd(
            engine,
            CommunityData("generic_mono"),
            transport,
            ContextData(),
            ObjectType(ObjectIdentity("1.3.6.1.2.1.1.2.0")),
        )
        return error is None and not status
    finally:
        engine.close_dispatcher()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snmpsim_command() -> Path | None:
    command = Path(os.environ.get(SNMPSIM_ENV) or DEFAULT_COMMAND)
    return command if command.exists() else None


def require_snmpsim() -> Path:
    """The snmpsim responder; skip when it is missing (fail with REQUIRE_SERVICES=1)."""
    command = snmpsim_command()
    if command is None:
        message = f"snmpsim is not installed ({DEFAULT_COMMAND} missing: run `make install-dev`)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return command


class SnmpSimulator:
    """snmpsim-command-responder in the foreground, as our child, on `port`; `stop()` ends exactly this process."""

    host = "127.0.0.1"
    v3_user = V3_USER
    v3_auth_key = V3_AUTH_KEY
    v3_priv_key = V3_PRIV_KEY

    def __init__(self, command: Path) -> None:
        self.command = command
        self.port = free_udp_port()
        self.root = Path(tempfile.mkdtemp(prefix="copydesk-snmpsim-"))
        self.data = self.root / "data"
        self.cache = self.root / "cache"
        self.data.mkdir()
        self.cache.mkdir()
        for recording in RECORDINGS.glob("*.snmprec"):
            shutil.copy(recording, self.data / recording.name)
        # snmpsim serves a v3 request with an empty context from the recording named "self".
        shutil.copy(RECORDINGS / f"{V3_RECORDING}.snmprec", self.data / "self.snmprec")
        self.log = self.root / "snmpsim.log"
        self._process: subprocess.Popen | None = None

    @property
    def communities(self) -> list[str]:
        return sorted(path.stem for path in RECORDINGS.glob("*.snmprec"))

    def start(self) -> None:
        environment = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.command),
                    f"--data-dir={self.data}",
                    f"--cache-dir={self.cache}",
                    f"--agent-udpv4-endpoint={self.host}:{self.port}",
                    f"--v3-user={V3_USER}",
                    f"--v3-auth-key={V3_AUTH_KEY}",
                    "--v3-auth-proto=SHA",
                    f"--v3-priv-key={V3_PRIV_KEY}",
                    "--v3-priv-proto=AES",
                    "--logging-method=stderr",
                    "--log-level=error",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.root,
            )
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        from modules.metering_channels.snmp import run_coroutine  # works beside Playwright's running event loop

        deadline = time.monotonic() + 30
        while not run_coroutine(_answers(self.host, self.port)):
            if self._process.poll() is not None:
                raise RuntimeError(f"snmpsim exited with {self._process.returncode}: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"snmpsim did not answer on port {self.port}: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def snmp_agent():
    """The session's snmpsim, serving every recording (community = recording name)."""
    command = require_snmpsim()
    simulator = SnmpSimulator(command)
    try:
        simulator.start()
        yield simulator
    finally:
        simulator.destroy()
