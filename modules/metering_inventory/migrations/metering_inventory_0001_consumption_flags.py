"""metering_inventory tables: explained and alerted consumption flags

Revision ID: metering_inventory_0001
Revises: 
Create Date: 2026-12-01 21:45:00
"""

import sqlalchemy as sa
from alembic import op


revision = 'metering_inventory_0001'
down_revision = None
branch_labels = ('metering_inventory',)
depends_on = ['metering_0002', 'rentals_inventory_0001']

COLOURS = "colour IN ('black', 'cyan', 'magenta', 'yellow')"
VERDICTS = "verdict IN ('over_consumption', 'under_consumption')"


def upgrade() -> None:
    op.create_table('metering_inventory_explained_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('colour', sa.String(length=10), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(COLOURS, name=op.f('ck_metering_inventory_explained_flag_colour_known')),
    sa.CheckConstraint(VERDICTS, name=op.f('ck_metering_inventory_explained_flag_verdict_known')),
    sa.CheckConstraint('window_end >= window_start', name=op.f('ck_metering_inventory_explained_flag_window_ordered')),
    sa.ForeignKeyConstraint(['device_id'], ['rentals_device.id'], name=op.f('fk_metering_inventory_explained_flag_device_id_rentals_device'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_metering_inventory_explained_flag_user_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metering_inventory_explained_flag'))
    )
    with op.batch_alter_table('metering_inventory_explained_flag', schema=None) as batch_op:
        batch_op.create_index('ix_metering_inventory_explained_flag_device', ['device_id', 'colour'], unique=False)

    op.create_table('metering_inventory_alerted_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('colour', sa.String(length=10), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('expected', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('consumed', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('alerted_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(COLOURS, name=op.f('ck_metering_inventory_alerted_flag_colour_known')),
    sa.CheckConstraint(VERDICTS, name=op.f('ck_metering_inventory_alerted_flag_verdict_known')),
    sa.CheckConstraint('window_end >= window_start', name=op.f('ck_metering_inventory_alerted_flag_window_ordered')),
    sa.ForeignKeyConstraint(['device_id'], ['rentals_device.id'], name=op.f('fk_metering_inventory_alerted_flag_device_id_rentals_device'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metering_inventory_alerted_flag'))
    )
    with op.batch_alter_table('metering_inventory_alerted_flag', schema=None) as batch_op:
        batch_op.create_index('ix_metering_inventory_alerted_flag_device', ['device_id', 'colour'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('metering_inventory_alerted_flag', schema=None) as batch_op:
        batch_op.drop_index('ix_metering_inventory_alerted_flag_device')
    op.drop_table('metering_inventory_alerted_flag')
    with op.batch_alter_table('metering_inventory_explained_flag', schema=None) as batch_op:
        batch_op.drop_index('ix_metering_inventory_explained_flag_device')
    op.drop_table('metering_inventory_explained_flag')
