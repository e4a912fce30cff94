"""Fixture module zulu."""
