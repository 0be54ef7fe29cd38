"""More of the record kept as written, on PostgreSQL, against a direct ``UPDATE`` too: a
version's metrics and statistics and a job's copied log are append-only, like approvals and
events (modeldeck only ever adds their rows), and who made a job (its ``actor``) is never
changed once the job exists.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Added to the append-only tables of 0008 (its function refuses UPDATE, DELETE, TRUNCATE).
APPEND_ONLY = ("metrics_record", "statistics_record", "log_chunk")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: one machine, its file's permissions (see core.identity)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION modeldeck_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION modeldeck_append_only()"
        )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION modeldeck_actor_kept() RETURNS trigger AS $$
        BEGIN
            IF NEW.actor IS DISTINCT FROM OLD.actor THEN
                RAISE EXCEPTION 'who made job % is kept: changing it refused for %',
                    OLD.id, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER job_actor_kept BEFORE UPDATE OF actor ON job "
        "FOR EACH ROW EXECUTE FUNCTION modeldeck_actor_kept()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS job_actor_kept ON job")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_actor_kept()")
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
