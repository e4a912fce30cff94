"""Loader fixtures: a dependency chain, a missing dependency, a bridge, an invalid manifest."""
