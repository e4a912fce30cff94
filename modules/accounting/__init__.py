"""Accounting: the dealer's books in double entry, fed by invoicing (docs/accounting.md)."""
