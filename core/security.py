"""Security headers on every response: a Content-Security-Policy with a per-request script nonce, and its friends."""

from __future__ import annotations

import secrets
from pathlib import Path

import flask_admin
from flask import Flask, current_app, g
from jinja2.ext import Extension

FLASK_ADMIN_TEMPLATES = str(Path(flask_admin.__file__).parent / "templates")


def csp_nonce() -> str:
    """The nonce of this response's inline scripts: `<script nonce="{{ csp_nonce() }}">`."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(nonce: str, frame_ancestors: str = "'none'") -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            # Flask-Admin's widgets (select2, datetime pickers) and the outbox's email previews set style attributes.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        )
    )


def set_security_headers(response):
    """Headers a view sets itself win: a page may relax X-Frame-Options to SAMEORIGIN, or bring its own policy."""
    headers = response.headers
    headers.setdefault("X-Frame-Options", "DENY")
    frame_ancestors = "'self'" if headers["X-Frame-Options"].upper() == "SAMEORIGIN" else "'none'"
    headers.setdefault("Content-Security-Policy", content_security_policy(csp_nonce(), frame_ancestors))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Password links carry their token in the URL: never send it to another site.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_app.config["BASE_URL"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class AdminInlineHandlers(Extension):
    """Flask-Admin's templates carry a few `onclick="..."` handlers and `javascript:` links, which the policy forbids.

    They are turned into data attributes when the template is loaded; core/static/admin-csp.js runs the known ones.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if filename and filename.startswith(FLASK_ADMIN_TEMPLATES):
            source = source.replace(' onclick="', ' data-csp-onclick="')
            source = source.replace('href="javascript:void(0)"', 'href="#" data-csp-void')
        return source


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension(AdminInlineHandlers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(set_security_headers)
