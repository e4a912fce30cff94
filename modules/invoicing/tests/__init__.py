"""Tests of the invoicing module."""
