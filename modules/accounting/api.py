"""Accounting API: every blueprint of the module's api_<topic>.py files."""

from modules.accounting import api_ledger, api_payments, api_receivables, api_reports, api_statements

BLUEPRINTS: list = [
    *api_ledger.BLUEPRINTS,
    *api_payments.BLUEPRINTS,
    *api_statements.BLUEPRINTS,
    *api_receivables.BLUEPRINTS,
    *api_reports.BLUEPRINTS,
]
