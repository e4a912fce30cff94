"""Device accounting setup: models, then each part registers its own views, API, portal pages and billable source."""

from core.context import ModuleContext


def setup(ctx: ModuleContext) -> None:
    from modules.device_accounting import (
        admin,
        api,
        api_held_jobs,
        api_operations,
        api_reports,
        billing,
        cli,
        demo,
        jobs,
        licence_usage,
        models,
        portal,
        views,
    )

    ctx.add_models(models)
    admin.register(ctx)
    api.register(ctx)
    api_operations.register(ctx)
    api_held_jobs.register(ctx)
    api_reports.register(ctx)
    portal.register(ctx)
    billing.register(ctx)
    licence_usage.register(ctx)  # its devices in use, for lan_licensing's Licence page
    views.register(ctx)  # the report charts' static files
    # Times are the dealer's (core.clock): periods open just after midnight on day 1 / Monday.
    ctx.add_periodic_job(jobs.open_quota_periods, "5 0 * * *")
    ctx.add_periodic_job(jobs.sync_directories, "15 * * * *")
    ctx.add_periodic_job(jobs.anonymise_transactions, "40 3 * * *")
    ctx.add_periodic_job(jobs.send_monthly_reports, "0 7 1 * *")
    ctx.add_periodic_job(jobs.expire_held_jobs, "*/10 * * * *")
    ctx.add_periodic_job(jobs.import_page_logs, "*/15 * * * *")
    ctx.add_demo_data(demo.load_demo)
    ctx.add_cli_group(cli.device_accounting)  # install-cups-backend, import-page-log
