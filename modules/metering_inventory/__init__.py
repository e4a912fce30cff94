"""Bridge between metering and inventory: the toner consumption check and the portal toner requests."""
