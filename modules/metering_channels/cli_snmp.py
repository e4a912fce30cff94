"""`flask metering snmp probe HOST[:PORT]` (prints what a device answers, writes nothing), `flask metering snmp
poll` (polls every configured device now and records the readings) and `flask metering snmp agent` (the on-site
agent: polls a customer's devices at its site and sends the answers to the dealer's API)."""

from __future__ import annotations

import json
import time

import click
from flask.cli import AppGroup

from modules.metering_channels import snmp


def add_commands(group: click.Group) -> None:
    group.add_command(snmp_cli)


@click.group("snmp", cls=AppGroup, help="SNMP polling of the devices.")
def snmp_cli() -> None:
    pass


@snmp_cli.command("probe")
@click.argument("address")
@click.option("--community", help="SNMPv2c community (default public).")
@click.option("--v3-user", help="SNMPv3 user: SNMPv3 instead of v2c.")
@click.option("--v3-auth-key", help="SNMPv3 authentication passphrase.")
@click.option("--v3-auth-protocol", type=click.Choice(snmp.AUTH_PROTOCOLS, case_sensitive=False), default="SHA")
@click.option("--v3-priv-key", help="SNMPv3 privacy (encryption) passphrase.")
@click.option("--v3-priv-protocol", type=click.Choice(snmp.PRIV_PROTOCOLS, case_sensitive=False), default="AES")
@click.option("--timeout", type=float, default=snmp.DEFAULT_TIMEOUT, show_default=True, help="Seconds per try.")
@click.option("--retries", type=int, default=snmp.DEFAULT_RETRIES, show_default=True)
def probe_command(address, community, v3_user, v3_auth_key, v3_auth_protocol, v3_priv_key, v3_priv_protocol, **kw):
    """Print as JSON the make, model, serial, counters and supplies (percent) a device answers; nothing is stored."""
    if community and v3_user:
        raise click.UsageError("Give --community or --v3-user, not both.")
    host, port = snmp.parse_host(address)
    v3 = None
    if v3_user:
        v3 = snmp.V3Credentials(v3_user, v3_auth_key, v3_auth_protocol.upper(), v3_priv_key, v3_priv_protocol.upper())
    try:
        result = snmp.probe(host, port, community=community, v3=v3, timeout=kw["timeout"], retries=kw["retries"])
    except snmp.ProbeError as error:
        raise click.ClickException(f"{error.outcome}: {error.message}") from None
    click.echo(json.dumps(result.summary(), ensure_ascii=False))


@snmp_cli.command("poll")
def poll_command() -> None:
    """Poll every active device the server polls itself now, and record their readings (each committed)."""
    polls = snmp.poll_devices(commit=True)
    for poll in polls:
        click.echo(f"{poll.device.serial}: {poll.outcome} - {poll.message}")
    if not polls:
        click.echo("No device to poll.")


@snmp_cli.command("agent")
@click.option("--api-url", required=True, help="The dealer's API, e.g. https://copydesk.example.com/api/v1")
@click.option(
    "--token",
    required=True,
    envvar="COPYDESK_AGENT_TOKEN",
    help="The agent token staff issued (SNMP devices, On-site agent token).",
)
@click.option("--every", type=int, default=0, help="Minutes between rounds; 0 (default): one round, then exit.")
@click.option("--timeout", type=float, default=snmp.DEFAULT_TIMEOUT, show_default=True, help="Seconds per try.")
@click.option("--retries", type=int, default=snmp.DEFAULT_RETRIES, show_default=True)
def agent_command(api_url: str, token: str, every: int, timeout: float, retries: int) -> None:
    """Poll this customer's devices here and send their counters to the dealer (no database needed)."""
    while True:
        try:
            for poll in snmp.run_agent(api_url, token, timeout=timeout, retries=retries):
                click.echo(f"{poll['serial']}: {poll['outcome']} - {poll['message']}")
        except snmp.AgentError as error:
            if not every:
                raise click.ClickException(str(error)) from None
            click.echo(f"error: {error}", err=True)
        if not every:
            return
        time.sleep(every * 60)
