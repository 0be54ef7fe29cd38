"""Who may approve in a project is changed as ``modeldeck project set`` changes it, also on a
direct ``UPDATE`` (PostgreSQL): only by one of its approvers when it names them, and never
without the change on the project's timeline, by the user who made it, in the same
transaction. A team member's grants let them update the project table (its archive, say),
which must not let them turn four eyes off unseen and approve their own version. The
tables' owner is not held to it (it could drop the trigger).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: one machine, its file's permissions (see core.identity)
    # Checked at the commit (a deferred constraint trigger): the timeline's row comes in the
    # same transaction, before or after the project's. The row is this transaction's when
    # its xmin is this transaction's id (its low 32 bits: an xid).
    op.execute(
        """
        CREATE OR REPLACE FUNCTION modeldeck_rules_recorded() RETURNS trigger AS $$
        BEGIN
            -- The tables' owner (or a superuser) could drop this trigger: nothing to refuse.
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = session_user AND rolsuper)
               OR pg_has_role(session_user,
                              (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
            THEN
                RETURN NULL;
            END IF;
            IF OLD.approvers IS NOT NULL
               AND jsonb_typeof(OLD.approvers::jsonb) = 'array'
               AND jsonb_array_length(OLD.approvers::jsonb) > 0
               AND NOT (OLD.approvers::jsonb ? session_user::text) THEN
                RAISE EXCEPTION '% may not change who may approve in project % (only % may)',
                    session_user, OLD.name, OLD.approvers
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NOT EXISTS (
                SELECT 1 FROM project_event e
                WHERE e.project_id = NEW.id AND e.kind = 'policy_changed'
                  AND e.by = session_user::text
                  AND e.xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
            ) THEN
                RAISE EXCEPTION 'who may approve in project % changes only with a record of '
                    'it on the project''s timeline (modeldeck project set)', OLD.name
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER project_rules_recorded
        AFTER UPDATE OF approvers, four_eyes ON project
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW
        WHEN (OLD.approvers::jsonb IS DISTINCT FROM NEW.approvers::jsonb
              OR OLD.four_eyes IS DISTINCT FROM NEW.four_eyes)
        EXECUTE FUNCTION modeldeck_rules_recorded()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS project_rules_recorded ON project")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_rules_recorded()")
