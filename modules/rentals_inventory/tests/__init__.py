"""Tests of the rentals_inventory bridge."""
