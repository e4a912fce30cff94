{
    "name": "inventory",
    "title": "Inventory",
    "version": "0.1.0",
    "summary": "Products, warehouses, shelves and technician vans, stock moves, serial numbers, reorder rules.",
    "depends": ["core"],
    "auto_install": False,
    "licence_feature": "inventory",
    "entry": "module",
    "sequence": 60,
}
