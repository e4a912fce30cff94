"""invoicing: an index on the billed refs' source_ref, which billed_keys looks refs up by

Revision ID: invoicing_0003
Revises: invoicing_0002
Create Date: 2026-12-03 15:40:00
"""

from alembic import op

revision = "invoicing_0003"
down_revision = "invoicing_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoicing_billed_ref", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoicing_billed_ref_source_ref"), ["source_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invoicing_billed_ref", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoicing_billed_ref_source_ref"))
