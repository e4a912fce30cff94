"""Fixture modules for the translation tests."""
