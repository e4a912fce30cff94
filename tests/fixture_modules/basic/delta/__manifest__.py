{"name": "delta", "title": "Delta", "version": "1.0", "depends": ["gamma"], "auto_install": False, "sequence": 100}
