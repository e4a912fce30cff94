{"name": "one", "title": "one", "version": "1.0", "depends": []}
