"""Fixture module delta."""
