"""A job's executor and its handle there.

Every existing job ran on this machine: executor "local", and its handle made of the pid,
process group and start time it already records.

Revision ID: 0005
Revises: 0004
"""

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "executor",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="local",
            )
        )
        batch_op.add_column(sa.Column("handle", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, pid, pgid, proc_start FROM job WHERE pid IS NOT NULL")
    ).all()
    for job_id, pid, pgid, start in rows:
        handle = json.dumps({"pid": pid, "pgid": pgid or pid, "start": start})
        conn.execute(
            sa.text("UPDATE job SET handle = :handle WHERE id = :id"),
            {"handle": handle, "id": job_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("handle")
        batch_op.drop_column("executor")
