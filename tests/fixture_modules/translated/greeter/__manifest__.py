{"name": "greeter", "title": "Greeter", "version": "1.0", "depends": [], "auto_install": False, "sequence": 10}
