"""Metering setup: registers its models, API resources, admin views, the overage billable source, jobs and signals."""

from flask_babel import lazy_gettext as _l

from core import signals
from core.admin import model_view
from core.api import register_api
from core.context import ModuleContext
from core.extension_points import BILLABLE_SOURCE, DASHBOARD, RECORD_PANELS
from core.portal import register_portal_link


def setup(ctx: ModuleContext) -> None:
    from modules.metering import admin, api, models
    from modules.metering.billing import (
        OverageSource,
        forget_usage,
        forget_usage_on_write,
        record_billed,
        release_billed,
    )
    from modules.metering.jobs import estimate_due_readings

    ctx.add_models(models)
    admin.register_labels(ctx.app)
    register_api(ctx.app, api.readings_blp)
    register_api(ctx.app, api.replacements_blp)
    ctx.add_admin_view(admin.ReadingEntryView(name=_l("Enter a reading"), endpoint="metering_entry"))
    ctx.add_admin_view(model_view(admin.ReadingView, models.Reading, _l("Readings"), "metering_reading"))
    ctx.add_admin_view(admin.ReviewView(name=_l("Review queue"), endpoint="metering_review"))
    ctx.add_admin_view(
        model_view(admin.ReplacementView, models.MeterReplacement, _l("Meter replacements"), "metering_replacement")
    )
    ctx.add_admin_view(admin.ImportView(name=_l("Import readings"), endpoint="metering_import"))
    ctx.register(BILLABLE_SOURCE, OverageSource())
    # What invoicing billed is metering's state (the high-water mark): stored in invoicing's transaction.
    signals.lines_billed.connect(record_billed, sender=ctx.app, weak=False)
    signals.lines_released.connect(release_billed, sender=ctx.app, weak=False)
    # The usage kept between `billable_lines` and `missing_readings` is dropped as soon as anything is written.
    ctx.add_session_listener("after_flush", forget_usage)
    ctx.add_session_listener("after_transaction_end", forget_usage)
    ctx.add_session_listener("do_orm_execute", forget_usage_on_write)
    ctx.add_periodic_job(estimate_due_readings, "30 2 * * *")
    _setup_campaigns(ctx)


def _setup_campaigns(ctx: ModuleContext) -> None:
    """Reading requests, their board and schedules, the customer's reading portal (campaigns.py, portal.py)."""
    from modules.metering import admin_campaigns, admin_panels, demo, models, portal
    from modules.metering.jobs import send_reading_requests

    ctx.add_blueprint(portal.bp)
    register_portal_link(
        ctx.app,
        "metering_portal.index",
        _l("Meter readings"),
        icon="gauge",
        permission="portal.readings",
        description=_l("Send your devices' counters and see the readings you sent."),
        order=10,
    )
    ctx.add_admin_view(admin_campaigns.CampaignView(name=_l("Reading requests"), endpoint="metering_campaigns"))
    ctx.add_admin_view(
        model_view(admin_campaigns.ScheduleView, models.ReadingSchedule, _l("Reading schedules"), "metering_schedule")
    )
    ctx.add_admin_view(admin_panels.MissingReadingsView(name=_l("Missing readings"), endpoint="metering_missing"))
    ctx.register(RECORD_PANELS, admin_panels.MeteringPanels())
    ctx.register(DASHBOARD, admin_panels.MeteringDashboard())
    ctx.add_periodic_job(send_reading_requests, "0 6 * * *")
    ctx.add_demo_data(demo.load_demo)
