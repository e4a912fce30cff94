"""Add-on modules: one folder each, with a `__manifest__.py` read before any of its code."""
