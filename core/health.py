"""`GET /healthz`: the state of the database, Redis and the modules, as JSON."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, jsonify

from core.db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks: dict[str, str] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "down"; the text tells the operator why
        checks["database"] = f"error: {exc.__class__.__name__}"
    redis_url = current_app.config.get("REDIS_URL")
    if not redis_url:
        checks["redis"] = "not configured"
    else:
        try:
            from core.jobs import redis_connection

            redis_connection().ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {exc.__class__.__name__}"
    # Informational: without a worker queued jobs wait, but the web application itself is fine.
    from core.jobs import workers_taking_jobs

    workers = workers_taking_jobs()
    resolution = current_app.extensions["copydesk"].resolution
    modules = {name: status.state for name, status in resolution.statuses.items()}
    healthy = all(v in ("ok", "not configured") for v in checks.values())
    body = {
        "status": "ok" if healthy else "degraded",
        **checks,
        "workers": "inline" if workers is None else workers,
        "modules": modules,
    }
    return jsonify(body), 200 if healthy else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
