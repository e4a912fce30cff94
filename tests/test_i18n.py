"""Italian, English, Spanish: complete catalogues; pages, emails, API errors and amounts in the chosen language."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from babel.messages.plurals import get_plural
from flask import render_template_string
from flask_babel import force_locale

from conftest import make_app
from core.db import db
from core.extensions import babel
from core.models import OutboxMessage
from core.outbox import queue_email
from tests.api_support import bearer
from tests.auth_support import login, make_customer, make_user
from tests.i18n_support import ROOT, TRANSLATED, compile_catalogues, extract_messages, load_catalogue

FIX = (
    "Run `make messages` to add them to core/translations/*/LC_MESSAGES/messages.po, then write the Italian and "
    "Spanish msgstr of each (and remove any `#, fuzzy` line once checked): see docs/i18n.md."
)
PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]|%[sdifr]|\{\w*\}")


@pytest.fixture(scope="session", autouse=True)
def compiled_catalogues():
    """Direct pytest runs get the .mo files `make test` would have compiled."""
    compile_catalogues()


def forget_loaded_translations(app) -> None:
    """Flask-Babel caches loaded catalogues per process, for every app: a test before us may have cached them
    before they were compiled, or from an app with other translation folders."""
    with app.app_context():
        babel.domain_instance.cache.clear()


@pytest.fixture
def i18n_app(app):
    forget_loaded_translations(app)
    return app


@pytest.fixture
def i18n_client(i18n_app):
    return i18n_app.test_client()


def text(response) -> str:
    return response.get_data(as_text=True).replace("&#39;", "'")


def msgstrs(message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def test_every_marked_string_is_translated_in_italian_and_spanish(tmp_path):
    extracted = extract_messages(tmp_path / "messages.pot")
    assert len(extracted) > 100, "babel.cfg found almost no strings: check its patterns"
    problems = []
    for language in (*TRANSLATED, "en"):
        catalogue = load_catalogue(language)
        for message in extracted:
            if not message.id:
                continue
            found = catalogue.get(message.id, context=message.context)
            where = ", ".join(sorted({filename for filename, _line in message.locations}))
            if found is None:
                problems.append(f"[{language}] not in the catalogue: {message.id!r} ({where})")
            elif language in TRANSLATED and found.fuzzy:
                problems.append(f"[{language}] fuzzy, to be checked: {message.id!r} ({where})")
            elif language in TRANSLATED and not all(msgstrs(found)):
                problems.append(f"[{language}] not translated: {message.id!r} ({where})")
    assert not problems, f"{len(problems)} strings are missing or untranslated:\n" + "\n".join(problems) + "\n" + FIX


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_placeholder_of_the_source(language):
    wrong = []
    for message in load_catalogue(language):
        if not message.id or message.fuzzy:  # fuzzy entries are not compiled
            continue
        sources = list(message.id) if message.pluralizable else [message.id]
        for index, translation in enumerate(msgstrs(message)):
            if not translation:
                continue
            expected = sorted(PLACEHOLDER.findall(sources[min(index, len(sources) - 1)]))
            got = sorted(PLACEHOLDER.findall(translation))
            if got != expected:
                wrong.append(f"{message.id!r}: {translation!r} has {got}, the source has {expected}")
    assert not wrong, f"[{language}] placeholders differ from the source:\n" + "\n".join(wrong)


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalogue_uses_the_plural_rule_of_its_language(language):
    catalogue = load_catalogue(language)
    rule = get_plural(language)
    assert (catalogue.num_plurals, catalogue.plural_expr) == (rule.num_plurals, rule.plural_expr)


@pytest.mark.parametrize(
    ("accept_language", "expected", "html_lang"),
    [
        ("it-IT,it;q=0.9,en;q=0.5", ["Accedi", "Password dimenticata?", "Ricordami su questo dispositivo"], "it"),
        ("es-ES,es;q=0.9", ["Iniciar sesión", "¿Has olvidado tu contraseña?", "Contraseña"], "es"),
        ("en-GB,en;q=0.9", ["Log in", "Forgot your password?", "Remember me on this device"], "en"),
    ],
)
def test_login_page_speaks_the_browser_language(i18n_client, accept_language, expected, html_lang):
    page = text(i18n_client.get("/login", headers={"Accept-Language": accept_language}))

    assert f'<html lang="{html_lang}">' in page
    for label in expected:
        assert label in page


def test_language_link_overrides_the_browser_language(i18n_client):
    page = text(i18n_client.get("/login?lang=es", headers={"Accept-Language": "it"}))

    assert "Iniciar sesión" in page
    assert "Accedi" not in page


@pytest.mark.parametrize(
    ("user_language", "customer_language", "expected", "not_expected"),
    [
        (None, "es", "¿Qué quieres hacer?", "Cosa vuoi fare?"),
        ("en", "es", "What would you like to do?", "¿Qué quieres hacer?"),
    ],
)
def test_customer_user_sees_their_own_language_not_the_browser_one(
    i18n_app, i18n_client, user_language, customer_language, expected, not_expected
):
    # Set up in a context of its own: requests inside the test's app context would share its `g`, where
    # Flask-Babel and Flask-Login keep the locale and the user of the first request.
    with i18n_app.app_context():
        customer_id = make_customer("Academia Cervantes SL", language=customer_language)
        make_user("secretaria@cervantes.example", "customer_admin", customer_id=customer_id, language=user_language)
    login(i18n_client, "secretaria@cervantes.example", url="/portal/login")

    page = text(i18n_client.get("/portal/", headers={"Accept-Language": "it-IT,it"}))

    assert expected in page
    assert not_expected not in page


def test_email_for_an_italian_customer_is_written_in_italian(i18n_app, db_session):
    message = queue_email(
        "amministrazione@studiobianchi.example",
        "core/test",
        language="it",
        context={"sent_on": dt.date(2026, 3, 5)},
    )
    db_session.commit()

    assert message.language == "it"
    assert message.subject == "Email di prova di Copydesk"
    assert "questa è un'email di prova di Copydesk" in message.body_text
    assert "giovedì 5 marzo 2026" in message.body_text
    assert "questa è un'email di prova di Copydesk" in html.unescape(message.body_html)


def test_new_spanish_customer_user_gets_the_set_password_email_in_spanish(i18n_app, db_session):
    customer_id = make_customer("Academia Cervantes SL", language="es")

    make_user("secretaria@cervantes.example", role="customer_admin", customer_id=customer_id, password=None)

    message = db_session.scalars(db.select(OutboxMessage)).one()
    assert message.language == "es"
    assert message.subject.startswith("Tu acceso a ")
    assert message.subject.endswith(": elige tu contraseña")
    assert "Para empezar, elige tu contraseña abriendo este enlace:" in message.body_text


@pytest.mark.parametrize(
    ("language", "money", "big_money", "number", "date"),
    [
        ("it", "1.234,50 €", "12.345,50 €", "1.234,5", "5 mar 2026"),
        ("es", "1.234,50 €", "12.345,50 €", "1.234,5", "5 mar 2026"),
        ("en", "€1,234.50", "€12,345.50", "1,234.5", "Mar 5, 2026"),
    ],
)
def test_money_numbers_and_dates_follow_the_language(i18n_app, language, money, big_money, number, date):
    template = "{{ a|money }}|{{ b|money('EUR') }}|{{ a|decimal }}|{{ day|date }}"
    with i18n_app.test_request_context("/"), force_locale(language):
        rendered = render_template_string(template, a=Decimal("1234.5"), b=Decimal("12345.5"), day=dt.date(2026, 3, 5))

    assert rendered.replace("\xa0", " ").split("|") == [money, big_money, number, date]


def test_api_problem_is_in_italian_for_an_italian_client(i18n_client):
    body = i18n_client.get("/api/v1/customers", headers={"Accept-Language": "it"}).get_json(force=True)

    assert body["status"] == 401
    assert body["title"] == "Autenticazione richiesta"
    assert body["detail"] == "Invia un token API valido come 'Authorization: Bearer <token>'."


def test_api_validation_errors_are_in_italian_for_an_italian_client(i18n_app, i18n_client):
    with i18n_app.app_context():
        headers = {**bearer("back_office"), "Accept-Language": "it-IT,it;q=0.9"}

    response = i18n_client.post("/api/v1/customers", json={"payment_terms_days": "soon"}, headers=headers)

    body = response.get_json(force=True)
    assert response.status_code == 422
    assert body["title"] == "Dati non validi"
    messages = {error["field"]: error["message"] for error in body["errors"]}
    assert messages["name"] == "Manca il dato di un campo obbligatorio."
    assert messages["payment_terms_days"] == "Non è un numero intero valido."


@pytest.mark.parametrize(
    ("language", "labels"),
    [("it", ["Elenco", "Crea", "Cerca", "Anagrafiche"]), ("es", ["Listado", "Crear", "Buscar", "Terceros"])],
)
def test_back_office_lists_show_flask_admin_labels_in_the_user_language(i18n_app, i18n_client, language, labels):
    with i18n_app.app_context():
        make_user(f"office-{language}@copyservice.example", role="back_office", language=language)
    login(i18n_client, f"office-{language}@copyservice.example")

    page = text(i18n_client.get("/admin/core_partner/"))

    for label in labels:
        assert label in page


def test_a_module_can_bring_its_own_translations_folder(tmp_path):
    greeter = ROOT / "tests" / "fixture_modules" / "translated" / "greeter"
    compile_catalogues([greeter / "translations"])
    app = make_app(
        f"sqlite:///{tmp_path / 'greeter.sqlite'}",
        COPYDESK_MODULE_PACKAGES=["tests.fixture_modules.translated"],
        COPYDESK_MODULES=["greeter"],
    )
    forget_loaded_translations(app)
    try:
        italian = app.test_client().get("/fixture/greeter/", headers={"Accept-Language": "it"})
        english = app.test_client().get("/fixture/greeter/", headers={"Accept-Language": "en"})
    finally:
        forget_loaded_translations(app)  # the next app has no greeter folder

    assert italian.get_data(as_text=True) == "Un saluto da un modulo"
    assert english.get_data(as_text=True) == "A greeting from a module"
