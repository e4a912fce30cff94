"""Configuration read from environment variables, with defaults for the embedded setup."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BASE_URL left at this default means a developer's machine: emailed links then follow the address being served
# (core.auth.services.external_url).
DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def _instance_dir() -> Path:
    path = Path(os.environ.get("COPYDESK_INSTANCE", ROOT / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key(instance: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept under instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _modules_list(value: str | None) -> list[str] | None:
    if value is None or value.strip() in ("", "*", "all"):
        return None  # every module found on disk
    return [name.strip() for name in value.split(",") if name.strip()]


def _hop_count(name: str, value: str | None) -> int:
    """A number of reverse proxies in front of the app: 0 (none, the default) or more."""
    text = (value or "0").strip()
    if not text.isdigit():
        raise ValueError(f"{name} must be the number of reverse proxies in front of the app (0, 1, 2...), not {text!r}")
    return int(text)


def load_config(overrides: dict | None = None) -> dict:
    """Build the Flask configuration: environment first, then explicit overrides (tests)."""
    env = os.environ
    instance = _instance_dir()
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'copydesk.sqlite'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://") :]
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    config = {
        "INSTANCE_DIR": str(instance),
        "SECRET_KEY": _secret_key(instance),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL") or None,
        "BASE_URL": env.get("BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
        # Reverse proxies whose X-Forwarded-For/-Proto are believed (werkzeug's ProxyFix); 0 believes none.
        "TRUSTED_PROXIES": _hop_count("TRUSTED_PROXIES", env.get("TRUSTED_PROXIES")),
        # Rate limits live in Redis when configured; if it stops answering, each process counts in memory meanwhile.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        # None means every module on disk; a new database records this request.
        "COPYDESK_MODULES": _modules_list(env.get("COPYDESK_MODULES")),
        # Python packages whose sub-folders hold modules (tests add their own).
        "COPYDESK_MODULE_PACKAGES": ["modules"],
        "MAIL_SERVER": env.get("MAIL_SERVER") or None,
        "MAIL_PORT": int(env.get("MAIL_PORT", "25")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": env.get("MAIL_USE_TLS", "0") == "1",
        "MAIL_USE_SSL": env.get("MAIL_USE_SSL", "0") == "1",
        "MAIL_DEFAULT_SENDER": env.get("MAIL_DEFAULT_SENDER", "Copydesk <noreply@copydesk.local>"),
        "JOB_QUEUE": env.get("JOB_QUEUE", "copydesk"),
        "JOB_TIMEOUT": int(env.get("JOB_TIMEOUT", "600")),
        "JOB_RETRIES": int(env.get("JOB_RETRIES", "3")),
        # Seconds before each retry of a failed job (RQ): backoff.
        "JOB_RETRY_INTERVALS": [10, 60, 300],
        # Inline jobs record their failure instead of raising into the request; tests may want them raised.
        "JOB_INLINE_RAISE": False,
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "core" / "translations"),
        "LANGUAGES": ["it", "en", "es"],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("BASE_URL", "").startswith("https://"),
        "REMEMBER_COOKIE_SECURE": env.get("BASE_URL", "").startswith("https://"),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "FLASK_ADMIN_SWATCH": "default",
        # The device collector (modules/device_collector): where it listens and how many processes it runs (the
        # options of `flask device-collector` read the same variables; unset host: it listens on 127.0.0.1), and the
        # host the back office tells technicians to type on a device.
        "COPYDESK_COLLECTOR_HOST": (env.get("COPYDESK_COLLECTOR_HOST") or "").strip() or None,
        "COPYDESK_COLLECTOR_PORT": int(env.get("COPYDESK_COLLECTOR_PORT", "9443")),
        "COPYDESK_COLLECTOR_PROCESSES": int(env.get("COPYDESK_COLLECTOR_PROCESSES", "1")),
        "COPYDESK_COLLECTOR_PUBLIC_HOST": (env.get("COPYDESK_COLLECTOR_PUBLIC_HOST") or "").strip() or None,
        # The largest document a print server may submit as a held print job (bytes; default 50 MiB).
        "COPYDESK_HELD_JOB_MAX_BYTES": int(env.get("COPYDESK_HELD_JOB_MAX_BYTES", str(50 * 1024 * 1024))),
        # The folders a print server's page log (set in the back office) may be read from, separated by ":".
        "COPYDESK_PAGE_LOG_DIRS": [
            folder for folder in env.get("COPYDESK_PAGE_LOG_DIRS", "/var/log/cups").split(":") if folder.strip()
        ],
    }
    if overrides:
        config.update(overrides)
        if "DATABASE_URL" in overrides:
            url = overrides["DATABASE_URL"]
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            config["SQLALCHEMY_DATABASE_URI"] = url
    return config
