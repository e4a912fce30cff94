"""Device collector setup: models, the `flask device-collector` commands, the back office, its dashboard card, demo."""

from core.context import ModuleContext


def setup(ctx: ModuleContext) -> None:
    from modules.device_collector import admin, cli, demo, models

    ctx.add_models(models)
    admin.register(ctx)
    ctx.add_cli_group(cli.device_collector)
    ctx.add_demo_data(demo.load_demo)
