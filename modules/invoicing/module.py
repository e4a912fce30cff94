"""Invoicing setup: models, API resources, back-office pages, the e-invoice exchange, the customer portal's invoices."""

from flask_babel import lazy_gettext as _l

from core.api import register_api
from core.context import ModuleContext
from core.extension_points import DASHBOARD, RECORD_PANELS
from core.portal import register_portal_link


def setup(ctx: ModuleContext) -> None:
    from modules.invoicing import admin, admin_panels, api, api_einvoice, cli, models, portal

    ctx.add_models(models)
    admin.register_labels(ctx.app)
    ctx.add_blueprint(portal.bp)
    register_api(ctx.app, api.runs_blp)
    register_api(ctx.app, api.invoices_blp)
    register_api(ctx.app, api_einvoice.blp)
    ctx.add_cli_group(cli.invoicing_cli)
    ctx.add_admin_view(admin.BillingRunsView(name=_l("Billing runs"), endpoint="invoicing_runs_admin"))
    ctx.add_admin_view(admin.InvoicesView(name=_l("Invoices"), endpoint="invoicing_invoices_admin"))
    ctx.add_admin_view(admin.EInvoicesView(name=_l("E-invoices"), endpoint="invoicing_einvoices_admin"))
    ctx.register(RECORD_PANELS, admin_panels.InvoicingPanels())
    ctx.register(DASHBOARD, admin_panels.InvoicingDashboard())
    register_portal_link(
        ctx.app,
        "invoicing_portal.invoices",
        _l("Invoices"),
        icon="invoice",
        permission="portal.invoices",
        description=_l("Your invoices and credit notes, to read and download."),
        order=30,
    )
