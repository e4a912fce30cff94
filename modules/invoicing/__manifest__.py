{
    "name": "invoicing",
    "title": "Invoicing",
    "version": "0.1.0",
    "summary": "Invoices and credit notes, billing runs over the billable sources, PDF, FatturaPA XML, email, portal.",
    "depends": ["core"],
    "auto_install": False,
    "licence_feature": "invoicing",
    "entry": "module",
    "sequence": 30,
}
