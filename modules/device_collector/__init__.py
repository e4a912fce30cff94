"""Device collector: the TLS service the MFPs talk to (docs/device-protocol.md)."""
