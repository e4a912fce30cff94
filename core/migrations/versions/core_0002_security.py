"""core: server-side sessions, secrets kept out of the outbox, jobs waiting for Redis

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = 'core_0002'
down_revision = 'core_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- sessions and remember tokens (auth) ---
    op.create_table('core_user_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('remember', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('ip_address', sa.String(length=45), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_user_session_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_user_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_core_user_session_token_hash'))
    )
    with op.batch_alter_table('core_user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_user_session_user_id'), ['user_id'], unique=False)
    # --- outbox secrets, mail retries, jobs waiting for Redis (mail and jobs) ---
    with op.batch_alter_table('core_outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sealed_secrets', sa.Text(), nullable=True))
    with op.batch_alter_table('core_job', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_core_job_status_known'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_core_job_status_known'), "status IN ('queued', 'waiting', 'running', 'done', 'failed')"
        )


def downgrade() -> None:
    # --- outbox secrets, mail retries, jobs waiting for Redis (mail and jobs) ---
    op.execute("UPDATE core_job SET status = 'queued' WHERE status = 'waiting'")
    with op.batch_alter_table('core_job', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_core_job_status_known'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_core_job_status_known'), "status IN ('queued', 'running', 'done', 'failed')"
        )
    with op.batch_alter_table('core_outbox_message', schema=None) as batch_op:
        batch_op.drop_column('sealed_secrets')
        batch_op.drop_column('next_attempt_at')
    # --- sessions and remember tokens (auth) ---
    with op.batch_alter_table('core_user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_user_session_user_id'))
    op.drop_table('core_user_session')
