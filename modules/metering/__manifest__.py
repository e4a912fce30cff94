{
    "name": "metering",
    "title": "Metering",
    "version": "0.1.0",
    "summary": "Meter readings and their checks, reading requests and the customer reading portal, usage for billing.",
    "depends": ["rentals"],
    "auto_install": False,
    "licence_feature": "metering",
    "entry": "module",
    "sequence": 20,
}
