"""The module loads on its own with metering, and its tables exist after migrating."""

import sqlalchemy as sa


def test_module_enabled_and_tables_created(app):
    from core.db import db

    with app.app_context():
        assert "metering_channels" in {m.name for m in app.extensions["copydesk"].resolution.enabled()}
        tables = set(sa.inspect(db.engine).get_table_names())
    assert {"metering_channels_mailbox", "metering_channels_email", "metering_channels_snmp_device"} <= tables
    assert "metering_channels_snmp_poll" in tables
