"""Inventory setup: models, API resources, CLI, the daily reorder report, and the back office (admin.register)."""

from core.api import register_api
from core.context import ModuleContext


def setup(ctx: ModuleContext) -> None:
    from modules.inventory import api, cli, jobs, models

    ctx.add_models(models)
    for blueprint in api.BLUEPRINTS:
        register_api(ctx.app, blueprint)
    ctx.add_cli_group(cli.inventory_cli)
    # 05:30 UTC: the list is in the warehouse's inbox before the working day starts in Europe.
    ctx.add_periodic_job(jobs.reorder_report, "30 5 * * *")
    from modules.inventory import admin, demo

    admin.register(ctx)  # labels, back-office views, dashboard card, customer panel, the van page (views.py)
    ctx.add_demo_data(demo.load_demo)
