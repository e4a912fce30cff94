{
    "name": "metering_channels",
    "title": "Meter channels",
    "version": "0.1.0",
    "summary": "Readings that arrive by themselves: the devices' counter report emails (IMAP) and SNMP polling.",
    "depends": ["metering"],
    "auto_install": False,
    "licence_feature": "metering",
    "entry": "module",
    "sequence": 25,
}
