"""Fixture module two: imports module one without declaring it in depends."""

from tests.fixture_modules.badimports.one import module as one_module

from ..one.module import setup as one_setup


def setup(ctx):
    one_setup(ctx)
    return one_module
