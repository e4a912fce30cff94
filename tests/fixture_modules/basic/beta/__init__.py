"""Fixture module beta."""
