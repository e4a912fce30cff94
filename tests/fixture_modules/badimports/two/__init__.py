"""Fixture module two."""
