"""Test-only modules loaded by the invoicing tests through COPYDESK_MODULE_PACKAGES."""
