"""Consumption check setup: models, labels, the staff pages, the API, the alert job and the portal toner page."""

from flask_babel import lazy_gettext as _l

from core.api import register_api
from core.context import ModuleContext
from core.extension_points import RECORD_PANELS
from core.portal import register_portal_link


def setup(ctx: ModuleContext) -> None:
    from modules.metering_inventory import admin, admin_panels, api, demo, models, portal
    from modules.metering_inventory.jobs import email_new_flags

    ctx.add_models(models)
    admin.register_labels(ctx.app)
    register_api(ctx.app, api.blp)
    ctx.add_admin_view(admin.ConsumptionView(name=_l("Consumption check"), endpoint="metering_inventory_check"))
    ctx.register(RECORD_PANELS, admin_panels.ConsumptionPanels())
    ctx.add_blueprint(portal.bp)
    register_portal_link(
        ctx.app,
        "metering_inventory_portal.index",
        _l("Toner"),
        icon="box",
        permission="portal.readings",
        description=_l("Ask your dealer for toner, beside your devices' counters."),
        order=11,
    )
    ctx.add_periodic_job(email_new_flags, "15 7 * * *")
    ctx.add_demo_data(demo.load_demo)
