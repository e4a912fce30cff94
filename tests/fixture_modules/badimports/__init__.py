"""Loader fixtures that break the module boundaries on purpose."""
