{
    "name": "metering",
    "title": "Metering",
    "version": "0.1.0",
    "summary": "Meter readings, validation, meter replacements, usage and overage for billing, CSV import.",
    "depends": ["rentals"],
    "auto_install": False,
    "licence_feature": "metering",
    "entry": "module",
    "sequence": 20,
}
