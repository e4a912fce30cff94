"""Fixture module gamma: importing it fails, so reading its manifest must not import it."""

raise RuntimeError("gamma's code was imported")
