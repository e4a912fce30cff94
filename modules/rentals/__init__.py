"""Rentals: the devices a dealer rents out and the cost-per-copy contracts they are on."""
