"""Engines on several hosts: a heartbeat row per engine, job logs copied into the database in
chunks, and settings kept in the database (the artifact store).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "engine_heartbeat",
        sa.Column("id", _text(), primary_key=True),
        sa.Column("host", _text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("version", _text(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_seen", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_engine_heartbeat_host", "engine_heartbeat", ["host"])
    op.create_table(
        "log_chunk",
        sa.Column("job_id", _text(), sa.ForeignKey("job.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "setting",
        sa.Column("key", _text(), primary_key=True),
        sa.Column("value", _text(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("setting")
    op.drop_table("log_chunk")
    op.drop_index("ix_engine_heartbeat_host", table_name="engine_heartbeat")
    op.drop_table("engine_heartbeat")
