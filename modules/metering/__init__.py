"""Metering: meter readings, their validation and review, meter replacements, usage and overage for billing."""
