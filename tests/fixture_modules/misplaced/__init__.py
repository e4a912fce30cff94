"""A module that puts every kind of thing in the wrong file, for tests/test_layout.py."""
