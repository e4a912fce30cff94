{
    "name": "accounting",
    "title": "Accounting",
    "version": "0.1.0",
    "summary": "Double-entry ledger fed by invoicing: payments, bank statements, SEPA, receivables, VAT, reports.",
    "depends": ["invoicing"],
    "auto_install": False,
    "licence_feature": "accounting",
    "entry": "module",
    "sequence": 70,
}
