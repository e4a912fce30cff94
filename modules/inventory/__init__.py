"""Inventory: products, the locations tree with vans, stock moves never edited, serials and reorder rules."""
