"""Fixture module alpha."""
