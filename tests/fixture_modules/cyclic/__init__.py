"""Loader fixtures with a dependency cycle."""
