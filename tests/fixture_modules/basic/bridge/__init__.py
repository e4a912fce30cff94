"""Fixture module bridge."""
