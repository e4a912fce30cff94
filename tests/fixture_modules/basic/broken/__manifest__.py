{"name": "broken", "title": "Broken", "version": "not-a-version", "depends": [], "auto_install": False, "sequence": 100}
