"""Tests of the accounting module."""
