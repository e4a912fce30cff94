"""rentals: whether a contract includes consumables, and the coverage its pages are assumed to print at

Revision ID: rentals_0002
Revises: rentals_0001
Create Date: 2026-12-01 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "rentals_0002"
down_revision = "rentals_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing contracts keep shipping toner for free (the cost-per-copy default) and assume 5% coverage.
    with op.batch_alter_table("rentals_contract", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consumables_included", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(
            sa.Column("assumed_coverage", sa.Numeric(precision=5, scale=2), server_default="5", nullable=False)
        )
        batch_op.create_check_constraint(op.f("ck_rentals_contract_assumed_coverage_positive"), "assumed_coverage > 0")


def downgrade() -> None:
    with op.batch_alter_table("rentals_contract", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_rentals_contract_assumed_coverage_positive"), type_="check")
        batch_op.drop_column("assumed_coverage")
        batch_op.drop_column("consumables_included")
