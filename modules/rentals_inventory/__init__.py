"""Bridge between rentals and inventory: product fits, consumable shipments to devices, devices from stock."""
