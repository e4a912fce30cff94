"""rentals: a contract's VAT code and its public procurement references (CIG, CUP, contract or order)

Revision ID: rentals_0003
Revises: rentals_0002
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "rentals_0003"
down_revision = "rentals_0002"
branch_labels = None
depends_on = "core_0005"


def upgrade() -> None:
    # Existing contracts keep vat_code NULL: they bill the default code of their rate (core.vat_codes).
    with op.batch_alter_table("rentals_contract", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vat_code", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("cig", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("cup", sa.String(length=15), nullable=True))
        batch_op.add_column(sa.Column("order_kind", sa.String(length=8), server_default="contract", nullable=False))
        batch_op.add_column(sa.Column("order_reference", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("order_date", sa.Date(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_rentals_contract_vat_code_core_vat_code"), "core_vat_code", ["vat_code"], ["code"]
        )
        batch_op.create_check_constraint(
            op.f("ck_rentals_contract_order_kind_known"), "order_kind IN ('contract', 'order')"
        )


def downgrade() -> None:
    with op.batch_alter_table("rentals_contract", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_rentals_contract_order_kind_known"), type_="check")
        batch_op.drop_constraint(op.f("fk_rentals_contract_vat_code_core_vat_code"), type_="foreignkey")
        for column in ("order_date", "order_reference", "order_kind", "cup", "cig", "vat_code"):
            batch_op.drop_column(column)
