{"name": "beta", "title": "Beta", "version": "1.0", "depends": ["alpha"], "auto_install": False, "sequence": 10}
