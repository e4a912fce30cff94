"""`flask device-collector`: run the collector; `ca` shows the device CA, `simulate` plays simulated devices (and
releases held print jobs with --release-held)."""

from __future__ import annotations

import socket

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9443


def default_hostnames(host: str) -> list[str]:
    """The names the server certificate carries unless --hostname says: this machine's, and the address listened on."""
    names = ["localhost", "127.0.0.1", socket.getfqdn()]
    if host not in ("0.0.0.0", "::", "") and host not in names:
        names.append(host)
    return names


@click.group(
    "device-collector",
    cls=AppGroup,
    invoke_without_command=True,
    help="Run the device collector: the TLS service the MFPs talk to (docs/device-protocol.md).",
)
@click.option(
    "--host",
    envvar="COPYDESK_COLLECTOR_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (env COPYDESK_COLLECTOR_HOST).",
)
@click.option(
    "--port",
    envvar="COPYDESK_COLLECTOR_PORT",
    default=DEFAULT_PORT,
    type=int,
    show_default=True,
    help="TCP port (env COPYDESK_COLLECTOR_PORT).",
)
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    help="A name the devices reach the collector by, in the server certificate (repeatable; default: "
    "localhost, 127.0.0.1 and this machine's name).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve this certificate (PEM) instead of one issued by the device CA.",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The key of --tls-cert (PEM).")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="Threads storing batches, per process (logins and authorisations have 4 threads of their own).",
)
@click.option(
    "--processes",
    envvar="COPYDESK_COLLECTOR_PROCESSES",
    default=1,
    type=click.IntRange(1, 64),
    show_default=True,
    help="Worker processes sharing the port (SO_REUSEPORT), e.g. one per core (env COPYDESK_COLLECTOR_PROCESSES).",
)
@click.pass_context
@with_appcontext
def device_collector(
    ctx: click.Context,
    host: str,
    port: int,
    hostnames: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    workers: int,
    processes: int,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    from modules.device_collector.server import run

    run(
        current_app._get_current_object(),
        host,
        port,
        hostnames=list(hostnames) or default_hostnames(host),
        tls_cert=tls_cert,
        tls_key=tls_key,
        workers=workers,
        processes=processes,
    )


@device_collector.command("ca")
def show_ca() -> None:
    """The device CA's fingerprint and certificate (created on first use): what devices and enrolment trust."""
    from core.db import db
    from modules.device_collector import pki

    ca = pki.ensure_ca()
    db.session.commit()
    click.echo(f"CA fingerprint (SHA-256): {pki.display_fingerprint(ca.fingerprint)}")
    click.echo(ca.certificate_pem.rstrip("\n"))


@device_collector.command("simulate")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="The collector's address.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="The collector's port.")
@click.option("--devices", default=3, show_default=True, help="Simulated devices, enrolled over the wire.")
@click.option("--users", default=10, show_default=True, help="Print users of the simulated customer.")
@click.option("--jobs", default=100, show_default=True, help="Jobs in all, spread over the devices.")
@click.option("--offline-every", default=0, show_default=True, help="Each device goes offline every K jobs (0: never).")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed plays the same sessions.")
@click.option(
    "--release-held",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="Hold N print jobs (generated PDFs) for the simulated users, then have them release every held job of "
    "theirs at the devices: list, fetch every chunk, check the digest, report the print (0: only those already held).",
)
def simulate(
    host: str,
    port: int,
    devices: int,
    users: int,
    jobs: int,
    offline_every: int,
    seed: int,
    release_held: int | None,
) -> None:
    """Enrol simulated devices and play realistic sessions against a running collector."""
    from modules.device_collector import simulator

    report = simulator.run_simulation(
        host=host,
        port=port,
        devices=devices,
        users=users,
        jobs=jobs,
        offline_every=offline_every,
        seed=seed,
        release_held=release_held,
    )
    for line in report.as_lines():
        click.echo(line)
