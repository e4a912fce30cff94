{
    "name": "rentals",
    "title": "Rentals",
    "version": "0.1.0",
    "summary": "Device catalogue, devices, installations and cost-per-copy contracts.",
    "depends": ["core"],
    "auto_install": False,
    "licence_feature": "rentals",
    "entry": "module",
    "sequence": 10,
}
