"""core: the dealer's time zone is core's setting (core.timezone), no longer metering's

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-01 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'core_0003'
down_revision = 'core_0002'
branch_labels = None
depends_on = None


def _rename(old: str, new: str) -> None:
    op.execute(
        sa.text(
            "UPDATE core_setting SET key = :new WHERE key = :old"
            " AND NOT EXISTS (SELECT 1 FROM core_setting WHERE key = :new)"
        ).bindparams(old=old, new=new)
    )


def upgrade() -> None:
    _rename("metering.timezone", "core.timezone")


def downgrade() -> None:
    _rename("core.timezone", "metering.timezone")
