"""Archived projects and datasets; a dataset's file hash and id column; a retired
deployment's reason.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("archived_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(
            sa.Column("id_column", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("archived_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retire_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("retire_reason")
    with op.batch_alter_table("dataset", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
        batch_op.drop_column("id_column")
        batch_op.drop_column("sha256")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
