"""Accounting setup: models, API resources, CLI, jobs, the invoice posting receiver, the back office and demo data."""

from core.api import register_api
from core.context import ModuleContext
from core.extension_points import DIRECT_DEBIT_MANDATES, PAYMENT_STATUS


def setup(ctx: ModuleContext) -> None:
    from modules.accounting import api, cli, jobs, mandates, models, postings, reconcile

    ctx.add_models(models)
    for blueprint in api.BLUEPRINTS:
        register_api(ctx.app, blueprint)
    ctx.add_cli_group(cli.accounting_cli)
    jobs.register(ctx)
    postings.connect(ctx)  # every invoice posted becomes its sales entry in the same transaction
    ctx.register(PAYMENT_STATUS, reconcile.AccountingPaymentStates())  # how far invoicing's invoices are paid
    ctx.register(DIRECT_DEBIT_MANDATES, mandates.AccountingMandates())  # the mandate on MP19 e-invoices
    from modules.accounting import admin, demo

    admin.register(ctx)
    ctx.add_demo_data(demo.load_demo)
