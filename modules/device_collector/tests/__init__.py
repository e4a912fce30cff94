"""Tests of the device collector: certificates, enrolment, the wire protocol, the server, the simulator."""
