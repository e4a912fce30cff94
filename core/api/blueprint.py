"""The blueprint class for API resources: like flask-smorest's, with a stricter parser of request arguments."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from flask_babel import gettext as _
from marshmallow import RAISE
from webargs import core
from webargs.flaskparser import FlaskParser

from core.api.errors import ApiProblem
from core.api.fields import loading_text

# Locations whose values are always text; a JSON body carries typed values.
TEXT_LOCATIONS = {"query", "querystring", "path", "view_args", "headers", "cookies", "form"}


class ApiArgumentsParser(FlaskParser):
    """A misspelt filter (`?customer_idd=5`) is a 422 naming it, never a silently unfiltered list; a body that cannot
    be read (nested too deeply, a number with thousands of digits) is a 400, and a PATCH without a body a 400."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def parse(self, argmap: Any, req: flask.Request | None = None, *, location: str | None = None, **kwargs: Any):
        with loading_text((location or self.location) in TEXT_LOCATIONS):
            return super().parse(argmap, req, location=location, **kwargs)

    def load_json(self, req: flask.Request, schema: Any) -> Any:
        data = super().load_json(req, schema)
        if data is core.missing and req.method == "PATCH":
            raise ApiProblem(400, _("Send the fields to change as a JSON object in the request body."))
        return data

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs answers these with its "not valid JSON" 400
        except RecursionError:
            raise ApiProblem(400, _("The request body is nested too deeply.")) from None
        except ValueError:  # Python refuses to convert integers of more than 4300 digits
            raise ApiProblem(400, _("A number in the request body has too many digits.")) from None


class ApiBlueprint(flask_smorest.Blueprint):
    """Use for every /api/v1 resource (core and modules), registered with core.api.register_api."""

    ARGUMENTS_PARSER = ApiArgumentsParser()
