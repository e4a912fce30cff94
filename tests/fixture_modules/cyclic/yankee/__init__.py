"""Fixture module yankee."""
