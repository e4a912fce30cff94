"""Fixture module broken."""
