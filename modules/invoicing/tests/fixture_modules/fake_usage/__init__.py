"""A test-only billable source: usage lines and missing readings set by the tests."""
