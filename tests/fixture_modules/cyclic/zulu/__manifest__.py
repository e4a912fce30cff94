{"name": "zulu", "title": "Zulu", "version": "1.0", "depends": ["xray"], "auto_install": False, "sequence": 100}
