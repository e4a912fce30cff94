{"name": "two", "title": "two", "version": "1.0", "depends": []}
