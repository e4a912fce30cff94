"""Rentals setup: registers its models, API resources, admin views and demo data."""

from flask_babel import lazy_gettext as _l

from core.admin import model_view
from core.api import register_api
from core.context import ModuleContext
from core.extension_points import BILLABLE_SOURCE, INVOICE_REFERENCES, RECORD_PANELS


def setup(ctx: ModuleContext) -> None:
    from modules.rentals import admin, admin_panels, api, models
    from modules.rentals.billing import RentalFeeSource
    from modules.rentals.demo import load_demo
    from modules.rentals.jobs import end_lapsed_contracts
    from modules.rentals.references import ContractReferences

    ctx.add_models(models)
    admin.register_labels(ctx.app)
    register_api(ctx.app, api.devices_blp)
    register_api(ctx.app, api.contracts_blp)
    ctx.add_admin_view(model_view(admin.ContractView, models.Contract, _l("Contracts"), "rentals_contract"))
    ctx.add_admin_view(model_view(admin.DeviceView, models.Device, _l("Devices"), "rentals_device"))
    ctx.add_admin_view(model_view(admin.DeviceModelView, models.DeviceModel, _l("Device models"), "rentals_model"))
    ctx.add_admin_view(
        model_view(admin.ManufacturerView, models.Manufacturer, _l("Manufacturers"), "rentals_manufacturer")
    )
    ctx.add_admin_view(model_view(admin.MeterTypeView, models.MeterType, _l("Meter types"), "rentals_meter_type"))
    ctx.add_admin_view(admin.ImportView(name=_l("Import"), endpoint="rentals_import"))
    ctx.add_demo_data(load_demo)
    # Hourly, so a contract is ended within the hour after the dealer's midnight whatever the time zone.
    ctx.add_periodic_job(end_lapsed_contracts, "0 * * * *")
    ctx.register(BILLABLE_SOURCE, RentalFeeSource())
    ctx.register(INVOICE_REFERENCES, ContractReferences())
    ctx.register(RECORD_PANELS, admin_panels.RentalsPanels())
