"""The health check tells an operator whether the database, Redis and modules are fine."""


def test_healthz_reports_database_and_modules(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["redis"] == "not configured"
    assert body["modules"]["rentals"] == "enabled"
