"""Fixture module one."""


def setup(ctx):
    pass
