"""rentals_inventory setup: models, labels, the consumable sales source, API, admin views, panels, the van page's
device delivery, the device-from-stock listener and demo data."""

from flask_babel import lazy_gettext as _l

from core import signals
from core.admin import model_view
from core.api import register_api
from core.context import ModuleContext
from core.extension_points import BILLABLE_SOURCE, DASHBOARD, RECORD_PANELS


def setup(ctx: ModuleContext) -> None:
    from core.extension_points import DEVICE_DELIVERY
    from modules.rentals_inventory import admin, admin_panels, api, models, stock_devices
    from modules.rentals_inventory.billing import ConsumableSalesSource, record_billed, release_billed
    from modules.rentals_inventory.demo import load_demo

    ctx.add_models(models)
    admin.register_labels(ctx.app)
    register_api(ctx.app, api.shipments_blp)
    ctx.add_admin_view(model_view(admin.ShipmentView, models.Shipment, _l("Shipments"), "rentals_inventory_shipment"))
    ctx.add_admin_view(
        model_view(admin.ProductFitView, models.ProductFit, _l("Product fits"), "rentals_inventory_product_fit")
    )
    ctx.register(BILLABLE_SOURCE, ConsumableSalesSource())
    ctx.register(RECORD_PANELS, admin_panels.ShipmentPanels())
    ctx.register(DASHBOARD, admin_panels.ShipmentDashboard())
    # Which shipments are on an invoice is kept in invoicing's transaction, so a billing run stops asking for them.
    signals.lines_billed.connect(record_billed, sender=ctx.app, weak=False)
    signals.lines_released.connect(release_billed, sender=ctx.app, weak=False)
    # A device installed from stock moves its serial out of the warehouse (stock_devices.py says why a listener).
    ctx.add_session_listener("after_flush", stock_devices.note_installations)
    ctx.add_session_listener("before_commit", stock_devices.move_installed_serials)
    ctx.add_session_listener("after_transaction_end", stock_devices.forget_installations)
    ctx.register(DEVICE_DELIVERY, stock_devices.VanDelivery())
    ctx.add_demo_data(load_demo)
