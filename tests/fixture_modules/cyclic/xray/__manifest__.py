{"name": "xray", "title": "Xray", "version": "1.0", "depends": ["yankee"], "auto_install": False, "sequence": 100}
