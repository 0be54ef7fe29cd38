"""Approvals that only their own approve or reject job can write (PostgreSQL). Engines write
a decision on behalf of the user whose job it is, so every member role may insert into
``approval`` and update a version's status. Against a member who bypasses modeldeck with
SQL, the server itself now holds them to what the CLI checks:

- a manual job is made by the user the server authenticated (``session_user``); a job the
  scheduler makes is a batch prediction;
- an approval (or rejection) is the record of an approve (or reject) job of the same user on
  the same version, one per job, and the project's rules hold for that user at that moment
  (its approvers, four eyes);
- a version is ``approved`` or ``rejected`` only from ``evaluated`` and with that decision
  on record, ``deployed`` only from ``approved`` (checked at the commit: the record comes in
  the same transaction, before or after the status);
- a version's model and maker (its job), and a model's project, are never changed.

The tables' owner (or a superuser) is not held to these: it could drop the triggers, and
``modeldeck db copy`` moves other users' jobs and approvals in as the owner.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The tables' owner (or a superuser): nothing to refuse it. TG_RELID is the trigger's table.
OWNER = """
    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = session_user AND rolsuper)
    OR pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
"""


# The columns that tie a version to its model, its maker (the job that made it) and its
# project: modeldeck never changes them once written.
LINEAGE = {"model_version": ("model_id", "job_id"), "model": ("project_id",)}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: one machine, its file's permissions (see core.identity)
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_job_made_by_its_user() RETURNS trigger AS $$
        BEGIN
            IF {OWNER} THEN
                RETURN NEW;
            END IF;
            IF NEW.trigger = 'manual' AND NEW.actor IS DISTINCT FROM session_user::text THEN
                RAISE EXCEPTION '% may not make a job in the name of %',
                    session_user, NEW.actor
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NEW.trigger = 'schedule'
               AND (NEW.actor IS DISTINCT FROM 'scheduler' OR NEW.type <> 'batch_predict') THEN
                RAISE EXCEPTION 'a scheduled job is a batch prediction by the scheduler: '
                    '% % by % refused for %', NEW.trigger, NEW.type, NEW.actor, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NEW.trigger NOT IN ('manual', 'schedule') THEN
                RAISE EXCEPTION 'a job is started manually or by a schedule, not %', NEW.trigger
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER job_made_by_its_user BEFORE INSERT ON job "
        "FOR EACH ROW EXECUTE FUNCTION modeldeck_job_made_by_its_user()"
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_decision_of_its_job() RETURNS trigger AS $$
        DECLARE
            decider job%ROWTYPE;
            rules project%ROWTYPE;
            maker text;
        BEGIN
            IF {OWNER} THEN
                RETURN NEW;
            END IF;
            SELECT * INTO decider FROM job WHERE id = NEW.job_id;
            -- The rules of the version's own project (not of what its job says it is in).
            SELECT p.* INTO rules FROM model_version v JOIN model m ON m.id = v.model_id
                JOIN project p ON p.id = m.project_id WHERE v.id = NEW.version_id;
            IF decider.id IS NULL
               OR decider.project_id IS DISTINCT FROM rules.id
               OR decider.type IS DISTINCT FROM (CASE NEW.decision WHEN 'approved' THEN 'approve'
                                                 WHEN 'rejected' THEN 'reject' END)
               OR decider.version_id IS DISTINCT FROM NEW.version_id
               OR decider.actor IS DISTINCT FROM NEW."by" THEN
                RAISE EXCEPTION 'an approval is the record of its own approve or reject job '
                    'by the same user on the same version: refused for %', session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF EXISTS (SELECT 1 FROM approval WHERE job_id = NEW.job_id) THEN
                RAISE EXCEPTION 'job % has decided already: refused for %',
                    NEW.job_id, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF rules.approvers IS NOT NULL
               AND jsonb_typeof(rules.approvers::jsonb) = 'array'
               AND jsonb_array_length(rules.approvers::jsonb) > 0
               AND NOT (rules.approvers::jsonb ? NEW."by") THEN
                RAISE EXCEPTION '% may not decide on % (only % may, in project %)',
                    NEW."by", NEW.version_id, rules.approvers, rules.name
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            SELECT j.actor INTO maker FROM model_version v JOIN job j ON j.id = v.job_id
                WHERE v.id = NEW.version_id;
            IF rules.four_eyes AND maker IS NOT DISTINCT FROM NEW."by" THEN
                RAISE EXCEPTION '% made % and may not decide on it '
                    '(four eyes are required in project %)', NEW."by", NEW.version_id, rules.name
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER approval_of_its_job BEFORE INSERT ON approval "
        "FOR EACH ROW EXECUTE FUNCTION modeldeck_decision_of_its_job()"
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_status_decided() RETURNS trigger AS $$
        DECLARE
            needed text := CASE WHEN NEW.status = 'rejected' THEN 'rejected' ELSE 'approved' END;
            came_from text[] := CASE WHEN NEW.status = 'deployed'
                                     THEN ARRAY['approved', 'deployed']
                                     ELSE ARRAY['evaluated'] END;
        BEGIN
            IF {OWNER} THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' OR NOT (OLD.status = ANY (came_from)) THEN
                RAISE EXCEPTION 'version % becomes % only from %, not from %: refused for %',
                    NEW.id, NEW.status, array_to_string(came_from, ' or '),
                    CASE WHEN TG_OP = 'INSERT' THEN 'nothing' ELSE OLD.status END, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NOT EXISTS (
                SELECT 1 FROM approval WHERE version_id = NEW.id AND decision = needed
            ) THEN
                RAISE EXCEPTION 'version % is % only with its % on record: refused for %',
                    NEW.id, NEW.status, CASE needed WHEN 'approved' THEN 'approval'
                    ELSE 'rejection' END, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    # At the commit (deferred): the approval comes in the same transaction as the status,
    # before or after it.
    for name, event, when in (
        (
            "model_version_decided",
            "UPDATE OF status",
            "OLD.status IS DISTINCT FROM NEW.status AND ",
        ),
        ("model_version_made_decided", "INSERT", ""),
    ):
        op.execute(
            f"""
            CREATE CONSTRAINT TRIGGER {name}
            AFTER {event} ON model_version
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW
            WHEN ({when}NEW.status IN ('approved', 'rejected', 'deployed'))
            EXECUTE FUNCTION modeldeck_status_decided()
            """
        )
    # What a version was made from, and a model's project, are kept: moved, they would take
    # a version out of its project's rules or away from who made it (four eyes).
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_lineage_kept() RETURNS trigger AS $$
        BEGIN
            IF {OWNER} THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'where a % belongs and what made it are kept: changing it '
                'refused for %', TG_TABLE_NAME, session_user
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table, columns in LINEAGE.items():
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER {table}_lineage_kept BEFORE UPDATE OF {', '.join(columns)} "
            f"ON {table} FOR EACH ROW WHEN ({changed}) "
            "EXECUTE FUNCTION modeldeck_lineage_kept()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in LINEAGE:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_lineage_kept ON {table}")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_lineage_kept()")
    op.execute("DROP TRIGGER IF EXISTS model_version_decided ON model_version")
    op.execute("DROP TRIGGER IF EXISTS model_version_made_decided ON model_version")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_status_decided()")
    op.execute("DROP TRIGGER IF EXISTS approval_of_its_job ON approval")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_decision_of_its_job()")
    op.execute("DROP TRIGGER IF EXISTS job_made_by_its_user ON job")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_job_made_by_its_user()")
