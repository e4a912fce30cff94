"""The Licence page: what is granted and used; a dealer admin uploads a licence, a refused one says why."""

from __future__ import annotations

import io

from modules.lan_licensing import licence as lic
from modules.lan_licensing.tests.conftest import install, licence_text
from tests.auth_support import csrf_token, login, make_user


def test_the_page_shows_the_grants_and_the_use(start):
    app = start()
    install(app, licence_text(seats=3, devices=12, tier_name="Medium"))
    with app.app_context():
        make_user("anna@dealer.it", name="Anna Rossi")
    client = app.test_client()
    login(client, "anna@dealer.it")
    page = client.get("/admin/licence/").get_data(as_text=True)
    assert "Copyservice Lombardia Srl" in page and "Medium" in page and 'data-seats-used="1"' in page
    assert "1 of 3" in page and "200 days to go" in page


def test_a_dealer_admin_uploads_a_file_and_a_refused_one_says_why(start):
    app = start()
    with app.app_context():
        make_user("anna@dealer.it", name="Anna Rossi")
        make_user("carla@dealer.it", role="technician", name="Carla Neri")
    client = app.test_client()
    login(client, "anna@dealer.it")
    token = csrf_token(client, "/admin/licence/")
    upload = {"csrf_token": token, "file": (io.BytesIO(licence_text(key=lic.generate_key()).encode()), "x.lic")}
    page = client.post("/admin/licence/install", data=upload, follow_redirects=True).get_data(as_text=True)
    assert "Licence refused" in page and "another key" in page
    upload = {"csrf_token": token, "file": (io.BytesIO(licence_text(licence_id="L-UP").encode()), "l.lic")}
    page = client.post("/admin/licence/install", data=upload, follow_redirects=True).get_data(as_text=True)
    assert "Licence L-UP installed" in page and 'data-phase="valid"' in page

    technician = app.test_client()
    login(technician, "carla@dealer.it")
    token = csrf_token(technician, "/admin/licence/")
    assert technician.post("/admin/licence/install", data={"csrf_token": token, "text": "x"}).status_code == 403
