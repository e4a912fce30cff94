"""Flask extensions, created once here and bound to each app in create_app."""

import logging

from flask import Flask
from flask.logging import default_handler
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
mail = Mail()
migrate = Migrate()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def init_limiter(app: Flask) -> None:
    """Bind the limiter: Redis when configured, falling back to memory (logged) while Redis does not answer."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    limiter.init_app(app)
    # Flask-Limiter logs the fallback and the recovery as warnings to a logger with only a NullHandler: unless logging
    # is configured, send them where Flask's own errors go.
    if not logging.getLogger().handlers and default_handler not in limiter.logger.handlers:
        if limiter.logger.level == logging.NOTSET:
            limiter.logger.setLevel(logging.WARNING)
        limiter.logger.addHandler(default_handler)
