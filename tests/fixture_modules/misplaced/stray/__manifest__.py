{"name": "stray", "title": "Stray", "version": "1.0", "depends": [], "auto_install": False, "sequence": 20}
