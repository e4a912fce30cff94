"""Fixture module xray."""
