{
    "name": "device_collector",
    "title": "Device collector",
    "version": "0.1.0",
    "summary": "The encrypted TCP service the MFPs talk to: device enrolment, logins, authorisations, jobs, counters.",
    "depends": ["device_accounting", "metering"],
    "auto_install": False,
    "licence_feature": "device_accounting",
    "entry": "module",
    "sequence": 45,
}
