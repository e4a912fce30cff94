"""People get a readable error page in their language; the API keeps answering problem+json."""

from tests.auth_support import login, make_customer, make_user


def test_unknown_page_answers_404_in_the_browsers_language(client):
    response = client.get("/no/such/page", headers={"Accept-Language": "it"})
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Pagina non trovata" in page
    assert 'lang="it"' in page


def test_customer_opening_the_back_office_gets_a_403_page_with_a_way_back(app):
    with app.app_context():
        customer = make_customer()
        make_user("anna@studio.it", role="customer_admin", customer_id=customer, language="es")
    client = app.test_client()
    login(client, "anna@studio.it", url="/portal/login")
    response = client.get("/admin/")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "No permitido" in page
    assert "/portal/" in page


def test_api_errors_stay_problem_json(client):
    response = client.get("/api/v1/no-such-resource")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
