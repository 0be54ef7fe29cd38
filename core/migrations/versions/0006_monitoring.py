"""Monitoring: a version's baseline, each batch prediction's drift run, and a deployment's
drift thresholds.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "baseline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", text(), nullable=False),
        sa.Column("job_id", text(), nullable=True),
        sa.Column("dataset_id", text(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("ignored", sa.JSON(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=True),
        sa.Column("sha256", text(), nullable=True),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id"),
    )
    op.create_table(
        "drift_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", text(), nullable=False),
        sa.Column("job_id", text(), nullable=False),
        sa.Column("version_id", text(), nullable=False),
        sa.Column("baseline_id", sa.Integer(), nullable=True),
        sa.Column("dataset_id", text(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", text(), nullable=False),
        sa.Column("warn_psi", sa.Float(), nullable=False),
        sa.Column("alert_psi", sa.Float(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_drift_run_deployment_id_id", "drift_run", ["deployment_id", "id"])
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warn_psi", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("alert_psi", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("alert_psi")
        batch_op.drop_column("warn_psi")
    op.drop_index("ix_drift_run_deployment_id_id", table_name="drift_run")
    op.drop_table("drift_run")
    op.drop_table("baseline")
