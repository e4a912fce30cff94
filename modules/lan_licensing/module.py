"""LAN licensing setup: licence page, read-only guard, seat gate, banners, reading counts, CLI, job, demo."""

from core.context import ModuleContext
from core.extension_points import BANNERS, LOGIN_GATE
from core.signals import reading_recorded


def setup(ctx: ModuleContext) -> None:
    from modules.lan_licensing import admin, banners, cli, demo, jobs, models, seats, tiers, views

    ctx.add_models(models)
    admin.register(ctx)
    views.register(ctx)
    ctx.register(LOGIN_GATE, seats.SeatGate())
    ctx.register(BANNERS, banners.LicenceBanners())
    # Sent inside the reading's own transaction, for this app only.
    reading_recorded.connect(tiers.on_reading_recorded, sender=ctx.app)
    ctx.add_cli_group(cli.licence_cli)
    ctx.add_periodic_job(jobs.watch_licence, "7 * * * *")
    ctx.add_demo_data(demo.load_demo)
