"""invoicing: e-invoice data (VAT codes on lines, procurement references, payment, stamp duty) and SdI receipts

Revision ID: invoicing_0002
Revises: invoicing_0001
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "invoicing_0002"
down_revision = "invoicing_0001"
branch_labels = None
depends_on = "core_0005"

EINVOICE_STATES = ("exported", "delivered", "rejected", "not_delivered", "accepted", "refused", "deadline_passed")
RECEIPT_KINDS = ("RC", "NS", "MC", "NE", "DT")


def upgrade() -> None:
    with op.batch_alter_table("invoicing_invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cig", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("cup", sa.String(length=15), nullable=True))
        batch_op.add_column(sa.Column("order_kind", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("order_reference", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("order_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("payment_method", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("payment_schedule", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("split_payment", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(
            sa.Column("stamp_duty", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("einvoice_state", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_invoicing_invoice_einvoice_state"), ["einvoice_state"], unique=False)
        batch_op.create_check_constraint(
            op.f("ck_invoicing_invoice_einvoice_state_known"), f"einvoice_state IN {EINVOICE_STATES!r}"
        )
    with op.batch_alter_table("invoicing_invoice_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vat_code", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("vat_nature", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("vat_reference", sa.String(length=100), nullable=True))
    # Posted documents already under split payment keep saying so on their e-invoice.
    op.execute(
        "UPDATE invoicing_invoice SET split_payment = (SELECT p.split_payment FROM core_partner p "
        "WHERE p.id = invoicing_invoice.customer_id) WHERE state = 'posted'"
    )
    op.create_table(
        "invoicing_einvoice_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=2), nullable=False),
        sa.Column("file_name", sa.String(length=120), nullable=False),
        sa.Column("sdi_id", sa.String(length=20), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=4), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN {RECEIPT_KINDS!r}", name=op.f("ck_invoicing_einvoice_receipt_kind_known")),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoicing_invoice.id"],
            name=op.f("fk_invoicing_einvoice_receipt_invoice_id_invoicing_invoice"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_einvoice_receipt")),
        sa.UniqueConstraint("file_name", name=op.f("uq_invoicing_einvoice_receipt_file_name")),
    )
    op.create_index(
        op.f("ix_invoicing_einvoice_receipt_invoice_id"), "invoicing_einvoice_receipt", ["invoice_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invoicing_einvoice_receipt_invoice_id"), table_name="invoicing_einvoice_receipt")
    op.drop_table("invoicing_einvoice_receipt")
    with op.batch_alter_table("invoicing_invoice_line", schema=None) as batch_op:
        for column in ("vat_reference", "vat_nature", "vat_code"):
            batch_op.drop_column(column)
    with op.batch_alter_table("invoicing_invoice", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_invoicing_invoice_einvoice_state_known"), type_="check")
        batch_op.drop_index(batch_op.f("ix_invoicing_invoice_einvoice_state"))
        for column in (
            "einvoice_state",
            "stamp_duty",
            "split_payment",
            "payment_schedule",
            "payment_method",
            "order_date",
            "order_reference",
            "order_kind",
            "cup",
            "cig",
        ):
            batch_op.drop_column(column)
