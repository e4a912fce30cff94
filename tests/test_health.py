"""The health check tells an operator whether the database, Redis and modules are fine."""


def test_healthz_reports_database_and_modules(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["redis"] == "not configured"
    assert body["modules"]["rentals"] == "enabled"


def test_dashboard_shows_core_figures_to_staff(app):
    from core.db import db
    from core.models import JobRecord, Partner
    from tests.auth_support import login, make_user

    with app.app_context():
        make_user("office@example.com", role="back_office")
        db.session.add_all([Partner(name="Studio Uno"), Partner(name="Studio Due")])
        db.session.add(JobRecord(id="broken-job", func="x:y", args=[], status="failed", error="boom"))
        db.session.commit()
    client = app.test_client()
    login(client, "office@example.com")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Active customers" in page and ">2<" in page.replace(" ", "").replace("\n", "")
    assert "Failed jobs" in page
