"""Throw-away modules that exercise the loader."""
