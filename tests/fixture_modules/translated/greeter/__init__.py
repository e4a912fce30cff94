"""Fixture module greeter: a page whose text is translated by the module's own catalogue."""
