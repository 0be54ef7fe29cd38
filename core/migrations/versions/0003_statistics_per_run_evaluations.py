"""Statistics per dataset and job (a table, never overwritten); the evaluations an approval
was decided on; the columns a version was trained on; jobs indexed by model (its last job).

The one statistics a version kept in ``model_version.statistics`` becomes the first row of
``statistics_record``, attributed to the version's last completed statistics job.

Revision ID: 0003
Revises: 0002
"""

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statistics_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("dataset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("statistics_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_statistics_record_version_id"), ["version_id"], unique=False
        )
    conn = op.get_bind()
    old = conn.execute(
        sa.text("SELECT id, statistics, updated_at FROM model_version WHERE statistics IS NOT NULL")
    ).all()
    for version_id, raw, updated_at in old:
        stats = json.loads(raw) if isinstance(raw, str) else raw
        if not stats:
            continue
        job = conn.execute(
            sa.text(
                "SELECT id, dataset_id, finished_at FROM job WHERE version_id = :v "
                "AND type = 'compute_stats' AND status = 'completed' "
                "ORDER BY finished_at DESC LIMIT 1"
            ),
            {"v": version_id},
        ).first()
        conn.execute(
            sa.text(
                "INSERT INTO statistics_record "
                "(version_id, job_id, dataset_id, at, rows, statistics) "
                "VALUES (:v, :j, :d, :at, :rows, :stats)"
            ),
            {
                "v": version_id,
                "j": job[0] if job else None,
                "d": job[1] if job else None,
                "at": (job[2] if job and job[2] else updated_at),
                "rows": stats.get("rows") if isinstance(stats, dict) else None,
                "stats": json.dumps(stats),
            },
        )
    # Plain SQL (SQLite 3.35+ and others): a batch copy of model_version would have to drop a
    # table that other tables' foreign keys point at.
    op.execute("ALTER TABLE model_version DROP COLUMN statistics")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("columns", sa.JSON(), nullable=True))
    with op.batch_alter_table("approval", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evaluations", sa.JSON(), nullable=True))
    op.create_index("ix_job_model_created", "job", ["model_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_job_model_created", table_name="job")
    op.execute("ALTER TABLE approval DROP COLUMN evaluations")
    op.execute("ALTER TABLE model_version DROP COLUMN columns")
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("statistics", sa.JSON(), nullable=True))
    with op.batch_alter_table("statistics_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statistics_record_version_id"))
    op.drop_table("statistics_record")
