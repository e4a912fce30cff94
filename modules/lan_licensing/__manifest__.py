{
    "name": "lan_licensing",
    "title": "Licence",
    "version": "0.1.0",
    "summary": "Signed licence files: licensed modules, staff seats on the LAN, reading tiers, usage reports.",
    "depends": ["core"],
    "auto_install": False,
    "licence_gate": "gate:entitled_features",
    "entry": "module",
    "sequence": 15,
}
