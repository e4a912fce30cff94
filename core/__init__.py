"""Copydesk core: the kernel every add-on module builds on."""

from core.app import create_app

__all__ = ["create_app"]
