{
    "name": "device_accounting",
    "title": "Device accounting",
    "version": "0.1.0",
    "summary": "Job accounting on the customers' MFPs: print users, cards, cost centers, prices, quotas, reports.",
    "depends": ["rentals"],
    "auto_install": False,
    "licence_feature": "device_accounting",
    "entry": "module",
    "sequence": 40,
}
