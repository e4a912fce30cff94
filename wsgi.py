"""WSGI entry point: `app = create_app()` for gunicorn and `flask --app wsgi`."""

from core import create_app

app = create_app()
