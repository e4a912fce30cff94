{"name": "gamma", "title": "Gamma", "version": "1.0", "depends": ["zeta"], "auto_install": False, "sequence": 100}
