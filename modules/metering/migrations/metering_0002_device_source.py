"""metering: readings sent by the devices themselves through the device collector (source `device`)

Revision ID: metering_0002
Revises: metering_0001
Create Date: 2026-12-01 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'metering_0002'
down_revision = 'metering_0001'
branch_labels = None
depends_on = None

BEFORE = "source IN ('portal', 'staff', 'api', 'csv', 'estimate', 'email', 'snmp')"
AFTER = "source IN ('portal', 'staff', 'api', 'csv', 'estimate', 'email', 'snmp', 'device')"


def _source_check(condition: str) -> None:
    # SQLite cannot change a constraint in place: batch mode copies the table (its foreign keys are not enforced
    # during migrations, so the readings' values and supply levels stay); PostgreSQL alters it.
    with op.batch_alter_table('metering_reading', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_metering_reading_source_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_metering_reading_source_known'), condition)


def upgrade() -> None:
    _source_check(AFTER)


def downgrade() -> None:
    # Before this revision a device's own reading could only have come in through the API.
    op.execute(sa.text("UPDATE metering_reading SET source = 'api' WHERE source = 'device'"))
    _source_check(BEFORE)
