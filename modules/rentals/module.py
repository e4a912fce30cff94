"""Rentals setup: registers its models, pages and admin views."""

from flask_babel import lazy_gettext as _l

from core.admin import model_view
from core.context import ModuleContext


def setup(ctx: ModuleContext) -> None:
    from modules.rentals import models
    from modules.rentals.admin import DeviceView
    from modules.rentals.views import bp

    ctx.add_models(models)
    ctx.add_blueprint(bp)
    ctx.add_admin_view(model_view(DeviceView, models.Device, _l("Devices"), "rentals_device"))
