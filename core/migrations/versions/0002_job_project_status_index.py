"""Index jobs by project and status: the project list counts running and failed jobs.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_project_status", "job", ["project_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_job_project_status", table_name="job")
