"""PLACEHOLDER: being written."""


def init_app(app) -> None:
    pass


from flask import Blueprint  # noqa: E402

bp = Blueprint("auth", __name__)


@bp.route("/login")
def login():
    return "login"


@bp.route("/logout", methods=["POST"])
def logout():
    return "logout"


def init_app(app) -> None:  # noqa: F811
    app.register_blueprint(bp)
