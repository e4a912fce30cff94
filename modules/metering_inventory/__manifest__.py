{
    "name": "metering_inventory",
    "title": "Consumption check",
    "version": "0.1.0",
    "summary": "The toner consumption check: pages from the readings against the cartridges shipped, flags and alerts.",
    "depends": ["metering", "inventory", "rentals_inventory"],
    "auto_install": True,
    "licence_feature": "inventory",
    "entry": "module",
    "sequence": 70,
}
