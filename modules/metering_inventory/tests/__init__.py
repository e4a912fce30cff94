"""Tests of the consumption check, its pages, API, alerts and the portal toner request."""
