"""Fixture module one."""
