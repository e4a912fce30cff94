"""The login and password forms (Flask-WTF, so every POST carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from core.auth.services import MIN_PASSWORD_LENGTH

_required = DataRequired(message=_l("This field is required"))


class LoginForm(FlaskForm):
    email = StringField(_l("Email"), validators=[_required], render_kw={"autocomplete": "username", "type": "email"})
    password = PasswordField(_l("Password"), validators=[_required], render_kw={"autocomplete": "current-password"})
    remember = BooleanField(_l("Remember me on this device"))
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = StringField(_l("Email"), validators=[_required], render_kw={"autocomplete": "username", "type": "email"})


def _new_password_fields():
    password = PasswordField(
        _l("New password"),
        validators=[
            _required,
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=_l("The password must be at least %(n)s characters long", n=MIN_PASSWORD_LENGTH),
            ),
        ],
        render_kw={"autocomplete": "new-password", "minlength": MIN_PASSWORD_LENGTH},
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[_required, EqualTo("new_password", message=_l("The two passwords are not the same"))],
        render_kw={"autocomplete": "new-password"},
    )
    return password, confirm


class SetPasswordForm(FlaskForm):
    new_password, confirm = _new_password_fields()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[_required], render_kw={"autocomplete": "current-password"}
    )
    new_password, confirm = _new_password_fields()


class LanguageForm(FlaskForm):
    language = HiddenField(validators=[_required])
    next = HiddenField()


class PortalInviteForm(FlaskForm):
    """A customer administrator invites a colleague to the portal."""

    email = StringField(_l("Email"), validators=[_required], render_kw={"type": "email", "autocomplete": "off"})
    name = StringField(_l("Name"))
    role = SelectField(
        _l("Role"),
        choices=[("customer_user", _l("Customer user")), ("customer_admin", _l("Customer administrator"))],
        validate_choice=False,  # the service refuses an unknown role, with its own message
    )
