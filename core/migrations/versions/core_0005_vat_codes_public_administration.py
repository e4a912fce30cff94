"""core: VAT codes with Natura, public administration customers, payment methods and instalments

Revision ID: core_0005
Revises: core_0004
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_vat_code",
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("description_it", sa.String(length=200), nullable=False),
        sa.Column("description_en", sa.String(length=200), nullable=False),
        sa.Column("description_es", sa.String(length=200), nullable=False),
        sa.Column("nature", sa.String(length=5), nullable=True),
        sa.Column("legal_reference", sa.String(length=100), nullable=True),
        sa.Column("chargeability", sa.String(length=1), nullable=False),
        sa.Column("stamp_duty", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("rate >= 0 AND rate <= 100", name=op.f("ck_core_vat_code_rate_range")),
        sa.CheckConstraint("chargeability IN ('I', 'D', 'S')", name=op.f("ck_core_vat_code_chargeability_known")),
        sa.CheckConstraint("rate = 0 OR nature IS NULL", name=op.f("ck_core_vat_code_nature_only_at_zero")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_core_vat_code")),
    )
    with op.batch_alter_table("core_partner", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_administration", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(
            sa.Column("payment_method", sa.String(length=20), server_default="bank_transfer", nullable=False)
        )
        batch_op.add_column(sa.Column("payment_instalments", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_check_constraint(
            op.f("ck_core_partner_payment_method_known"),
            "payment_method IN ('bank_transfer', 'sepa_direct_debit', 'riba', 'cash', 'card')",
        )
        batch_op.create_check_constraint(
            op.f("ck_core_partner_payment_instalments_range"), "payment_instalments BETWEEN 1 AND 12"
        )


def downgrade() -> None:
    with op.batch_alter_table("core_partner", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_core_partner_payment_instalments_range"), type_="check")
        batch_op.drop_constraint(op.f("ck_core_partner_payment_method_known"), type_="check")
        batch_op.drop_column("payment_instalments")
        batch_op.drop_column("payment_method")
        batch_op.drop_column("public_administration")
    op.drop_table("core_vat_code")
