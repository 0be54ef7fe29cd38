"""A team on one database: who may approve in a project (its approvers, four eyes), the
project's own append-only timeline (who changed those, when), and, on PostgreSQL, approvals
and events that nobody can edit or delete, not even with a direct ``UPDATE``.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The tables that are only ever appended to: an audit trail.
APPEND_ONLY = ("approval", "job_event", "deployment_event", "project_event")


def upgrade() -> None:
    op.add_column("project", sa.Column("approvers", sa.JSON(), nullable=True))
    op.add_column(
        "project",
        sa.Column("four_eyes", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "project_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
    )
    op.create_index("ix_project_event_project_id", "project_event", ["project_id"])
    if op.get_bind().dialect.name == "postgresql":
        _append_only_triggers()


def _append_only_triggers() -> None:
    """A row of an append-only table can be added and read, never changed or removed: a
    trigger refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE`` whoever asks."""
    op.execute(
        """
        CREATE OR REPLACE FUNCTION modeldeck_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused for %',
                TG_TABLE_NAME, TG_OP, current_user
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION modeldeck_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION modeldeck_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS modeldeck_append_only()")
    op.drop_index("ix_project_event_project_id", table_name="project_event")
    op.drop_table("project_event")
    with op.batch_alter_table("project", schema=None) as batch_op:  # SQLite: drop by copy
        batch_op.drop_column("four_eyes")
        batch_op.drop_column("approvers")
