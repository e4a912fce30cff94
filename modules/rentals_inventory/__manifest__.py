{
    "name": "rentals_inventory",
    "title": "Rentals and inventory",
    "version": "0.1.0",
    "summary": "Consumables fitted to device models, toner shipments to devices and their billing, devices from stock.",
    "depends": ["rentals", "inventory"],
    "auto_install": True,
    "licence_feature": "inventory",
    "entry": "module",
    "sequence": 65,
}
