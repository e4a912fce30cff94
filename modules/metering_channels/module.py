"""Meter channels setup: models, API, the `flask metering` commands, the mailbox and SNMP polls, the back office."""

from core.api import register_api
from core.context import ModuleContext


def setup(ctx: ModuleContext) -> None:
    from modules.metering_channels import admin, api, cli, demo, jobs, models

    ctx.add_models(models)
    for blueprint in api.BLUEPRINTS:
        register_api(ctx.app, blueprint)
    ctx.add_cli_group(cli.metering_cli)
    ctx.add_periodic_job(jobs.poll_mailboxes, "*/5 * * * *")
    # Every 5 minutes: jobs_snmp.poll_due_devices decides which devices are due (metering_channels.snmp_hours).
    ctx.add_periodic_job(jobs.poll_snmp_devices, "*/5 * * * *")
    ctx.add_demo_data(demo.load_demo)
    admin.register(ctx)  # labels, mailbox views, upload, unmatched queue, device panel; admin_snmp.register inside
