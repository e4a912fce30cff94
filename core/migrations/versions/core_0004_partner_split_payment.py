"""core: partners under split payment (scissione dei pagamenti)

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'core_0004'
down_revision = 'core_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('core_partner', schema=None) as batch_op:
        batch_op.add_column(sa.Column('split_payment', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('core_partner', schema=None) as batch_op:
        batch_op.drop_column('split_payment')
