"""API blueprints with one multipart upload: that endpoint takes a file body up to its limit, the others JSON."""

from __future__ import annotations

from collections.abc import Callable

from flask import request
from flask_smorest import Blueprint

from core.api import require_json_body


def allow_upload(blueprint: Blueprint, endpoint: str, max_bytes: int) -> None:
    """Let POST `endpoint` of `blueprint` take `multipart/form-data` of at most `max_bytes`; every other request of
    the blueprint keeps the API's JSON-only rule."""

    def json_or_upload() -> None:
        if request.endpoint == endpoint and request.method == "POST":
            request.max_content_length = max_bytes
            if request.mimetype == "multipart/form-data":
                return
        require_json_body()

    @blueprint.record
    def _replace_json_rule(state) -> None:
        # register_api has put its JSON-only rule before this blueprint's own functions; the upload is the exception.
        funcs: list[Callable] = state.app.before_request_funcs.get(state.name, [])
        state.app.before_request_funcs[state.name] = [
            json_or_upload if func is require_json_body else func for func in funcs
        ]
