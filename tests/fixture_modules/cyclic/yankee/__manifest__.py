{"name": "yankee", "title": "Yankee", "version": "1.0", "depends": ["zulu"], "auto_install": False, "sequence": 100}
