"""The module loader: dependency order, skip reasons, bridges, cycles, and what a disabled module leaves behind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import make_app, migrate
from core.boundaries import foreign_key_violations, import_violations
from core.loader import LoaderError, discover, resolve

BASIC = "tests.fixture_modules.basic"


def basic_app(tmp_path, modules=None):
    return make_app(
        f"sqlite:///{tmp_path / 'loader.sqlite'}",
        COPYDESK_MODULE_PACKAGES=[BASIC],
        COPYDESK_MODULES=modules,
    )


def test_manifests_are_read_without_importing_module_code():
    manifests = discover([BASIC])
    # gamma's package raises when imported; discovery still reads its manifest.
    assert manifests["gamma"].depends == ("zeta",)


def test_missing_dependency_skips_the_module_and_everything_depending_on_it():
    statuses = resolve(discover([BASIC]), {}, None).statuses
    assert statuses["gamma"].state == "skipped"
    assert "zeta" in statuses["gamma"].reason and "not installed" in statuses["gamma"].reason
    assert statuses["delta"].state == "skipped"
    assert "gamma" in statuses["delta"].reason


def test_invalid_manifest_is_skipped_with_its_problem():
    status = resolve(discover([BASIC]), {}, None).statuses["broken"]
    assert status.state == "skipped"
    assert "not-a-version" in status.reason


def test_dependencies_come_first_and_ties_go_by_sequence():
    order = resolve(discover([BASIC]), {}, None).order
    assert order.index("alpha") < order.index("beta") < order.index("bridge")


def test_auto_install_bridge_follows_its_dependencies():
    manifests = discover([BASIC])
    both = resolve(manifests, {}, {"alpha", "beta"}).statuses["bridge"]
    assert both.state == "enabled"
    only_alpha = resolve(manifests, {}, {"alpha"}).statuses["bridge"]
    assert only_alpha.state == "disabled"
    assert "beta" in only_alpha.reason


def test_explicitly_disabled_bridge_stays_off():
    statuses = resolve(discover([BASIC]), {"bridge": False}, None).statuses
    assert statuses["bridge"].state == "disabled"


def test_dependency_cycle_is_a_startup_error_naming_the_cycle():
    with pytest.raises(LoaderError) as error:
        resolve(discover(["tests.fixture_modules.cyclic"]), {}, None)
    message = str(error.value)
    assert all(name in message for name in ("xray", "yankee", "zulu"))


def test_licence_gate_skips_unlicensed_modules_with_reason():
    manifests = discover([BASIC])
    statuses = resolve(manifests, {}, None, lambda m: "not licensed" if m.name == "alpha" else None).statuses
    assert statuses["alpha"].state == "skipped"
    assert statuses["alpha"].reason == "not licensed"
    assert statuses["beta"].state == "skipped"


def test_enabled_module_serves_its_page_and_admin_menu(tmp_path):
    client = basic_app(tmp_path).test_client()
    assert client.get("/fixture/alpha/").data == b"alpha page"
    assert client.get("/fixture/beta/").status_code == 200


def test_disabled_module_urls_answer_404_and_its_admin_menu_is_gone(tmp_path):
    app = basic_app(tmp_path, modules=["alpha"])
    client = app.test_client()
    assert client.get("/fixture/alpha/").status_code == 200
    assert client.get("/fixture/beta/").status_code == 404
    assert client.get("/fixture/bridge/").status_code == 404
    endpoints = {view.endpoint for view in app.extensions["copydesk"].admin._views}
    assert "fixture_alpha_admin" in endpoints
    assert "fixture_beta_admin" not in endpoints and "fixture_bridge_admin" not in endpoints


def test_modules_cli_lists_every_module_with_state_and_reason(tmp_path):
    app = basic_app(tmp_path)
    output = app.test_cli_runner().invoke(args=["modules", "list"]).output
    lines = {line.split()[0]: line for line in output.splitlines()[1:]}
    assert set(lines) == {"alpha", "beta", "bridge", "broken", "delta", "gamma"}
    assert "enabled" in lines["alpha"]
    assert "skipped" in lines["delta"] and "gamma" in lines["delta"]


def test_disabling_a_module_others_depend_on_is_refused_unless_they_go_too(tmp_path):
    app = basic_app(tmp_path)
    migrate(app)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["modules", "disable", "alpha"])
    assert refused.exit_code != 0
    assert "beta" in refused.output and "--with-dependents" in refused.output

    done = runner.invoke(args=["modules", "disable", "alpha", "--with-dependents"])
    assert done.exit_code == 0, done.output
    restarted = basic_app(tmp_path)
    statuses = restarted.extensions["copydesk"].resolution.statuses
    assert statuses["alpha"].state == "disabled"
    assert statuses["beta"].state == "disabled"
    assert restarted.test_client().get("/fixture/alpha/").status_code == 404


def test_enable_takes_effect_at_next_start(tmp_path):
    app = basic_app(tmp_path, modules=["alpha"])
    migrate(app)
    result = app.test_cli_runner().invoke(args=["modules", "enable", "beta"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get("/fixture/beta/").status_code == 404  # this process keeps its modules
    restarted = basic_app(tmp_path, modules=["alpha"])
    assert restarted.test_client().get("/fixture/beta/").status_code == 200


def test_enabling_a_module_whose_dependency_is_missing_says_why(tmp_path):
    app = basic_app(tmp_path)
    migrate(app)
    result = app.test_cli_runner().invoke(args=["modules", "enable", "delta"])
    assert result.exit_code != 0
    assert "zeta" in result.output


def test_modules_admin_page_shows_states(tmp_path):
    from tests.auth_support import login, make_user

    app = basic_app(tmp_path)
    migrate(app)
    with app.app_context():
        make_user("boss@example.com", role="dealer_admin")
    client = app.test_client()
    login(client, "boss@example.com")
    page = client.get("/admin/core_modules/").get_data(as_text=True)
    assert 'data-state="skipped"' in page
    assert "zeta" in page


def test_boundary_checker_flags_imports_outside_depends():
    problems = import_violations(discover(["tests.fixture_modules.badimports"]))
    assert len(problems) == 2
    assert all("module two imports" in p and "one is not in its depends" in p for p in problems)


def test_boundary_checker_flags_foreign_keys_to_undeclared_modules():
    manifests = discover(["tests.fixture_modules.badimports"])
    metadata = sa.MetaData()
    sa.Table("one_thing", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "two_other",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("thing_id", sa.ForeignKey("one_thing.id")),
    )
    assert foreign_key_violations(metadata, manifests) == [
        "two_other.thing_id -> one_thing: two does not depend on one"
    ]
