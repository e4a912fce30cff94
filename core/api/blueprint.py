"""The blueprint class for API resources: like flask-smorest's, but unknown query parameters are refused."""

from __future__ import annotations

import flask_smorest
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser


class StrictQueryParser(FlaskParser):
    """A misspelt filter (`?customer_idd=5`) is a 422 naming it, never a silently unfiltered list."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}


class ApiBlueprint(flask_smorest.Blueprint):
    """Use for every /api/v1 resource (core and modules), registered with core.api.register_api."""

    ARGUMENTS_PARSER = StrictQueryParser()
