"""`flask metering ...`: metering has no CLI group of its own, so the channels module owns it."""

from __future__ import annotations

import click

from modules.metering_channels import cli_email, cli_snmp


@click.group("metering", help="Meter readings that arrive by themselves: counter report emails, SNMP.")
def metering_cli() -> None:
    pass


cli_email.add_commands(metering_cli)
cli_snmp.add_commands(metering_cli)
