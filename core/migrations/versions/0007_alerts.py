"""Alerts: webhooks of a project, the notices they must tell (one per alert and occurrence)
and every try to deliver one (append-only), and how far the engine has looked.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "alert",
        sa.Column("id", _text(), nullable=False),
        sa.Column("project_id", _text(), nullable=False),
        sa.Column("deployment_id", _text(), nullable=True),
        sa.Column("webhook", _text(), nullable=False),
        sa.Column("format", _text(), nullable=False),
        sa.Column("events", _text(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("removed_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_alert_project_id"), "alert", ["project_id"], unique=False)
    op.create_table(
        "alert_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", _text(), nullable=False),
        sa.Column("source", _text(), nullable=False),
        sa.Column("event", _text(), nullable=False),
        sa.Column("project_id", _text(), nullable=False),
        sa.Column("deployment_id", _text(), nullable=True),
        sa.Column("job_id", _text(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "source"),
    )
    op.create_index(op.f("ix_alert_notice_alert_id"), "alert_notice", ["alert_id"], unique=False)
    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", _text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("outcome", _text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", _text(), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["notice_id"], ["alert_notice.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_alert_delivery_notice_id"), "alert_delivery", ["notice_id"], unique=False
    )
    op.create_index(
        op.f("ix_alert_delivery_alert_id"), "alert_delivery", ["alert_id"], unique=False
    )
    op.create_table(
        "alert_cursor",
        sa.Column("name", _text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("alert_cursor")
    op.drop_index(op.f("ix_alert_delivery_alert_id"), table_name="alert_delivery")
    op.drop_index(op.f("ix_alert_delivery_notice_id"), table_name="alert_delivery")
    op.drop_table("alert_delivery")
    op.drop_index(op.f("ix_alert_notice_alert_id"), table_name="alert_notice")
    op.drop_table("alert_notice")
    op.drop_index(op.f("ix_alert_project_id"), table_name="alert")
    op.drop_table("alert")
