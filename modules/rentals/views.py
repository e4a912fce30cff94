"""Rentals pages outside the admin."""

from flask import Blueprint

bp = Blueprint("rentals", __name__, url_prefix="/rentals")
