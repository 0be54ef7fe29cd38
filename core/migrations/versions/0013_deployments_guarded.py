"""Deployments that only their own deploy job can make (PostgreSQL). Engines write a
deployment on behalf of the user whose deploy job it is, so every member role may insert into
``deployment``. Against a member who bypasses modeldeck with SQL, the server now holds them to
what a deploy job does:

- a deployment is made by a deploy job of the same version, project and dataset, one per
  job, and only of a version that is approved (or deployed already);
- what a deployment serves (its version, project, dataset, and the job that made it) is never
  changed, and a retired deployment stays retired.

The tables' owner (or a superuser) is not held to these, as in revision 0012.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# As in 0012: the tables' owner (or a superuser) is refused nothing.
OWNER = """
    EXISTS (SELECT 1 FROM pg_roles WHERE rolname = session_user AND rolsuper)
    OR pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
"""

KEPT = ("version_id", "project_id", "dataset_id", "job_id")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: one machine, its file's permissions (see core.identity)
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_deployment_of_its_job() RETURNS trigger AS $$
        DECLARE
            deployer job%ROWTYPE;
            served text;
        BEGIN
            IF {OWNER} THEN
                RETURN NEW;
            END IF;
            SELECT * INTO deployer FROM job WHERE id = NEW.job_id;
            IF deployer.id IS NULL
               OR deployer.type IS DISTINCT FROM 'deploy'
               OR deployer.version_id IS DISTINCT FROM NEW.version_id
               OR deployer.project_id IS DISTINCT FROM NEW.project_id
               OR deployer.dataset_id IS DISTINCT FROM NEW.dataset_id
               OR NEW.status IS DISTINCT FROM 'active' THEN
                RAISE EXCEPTION 'a deployment is made active by its own deploy job of the same '
                    'version, project and dataset: refused for %', session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF EXISTS (SELECT 1 FROM deployment WHERE job_id = NEW.job_id) THEN
                RAISE EXCEPTION 'job % has made its deployment already: refused for %',
                    NEW.job_id, session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            SELECT v.status INTO served FROM model_version v JOIN model m ON m.id = v.model_id
                WHERE v.id = NEW.version_id AND m.project_id = NEW.project_id;
            IF served IS NULL OR served NOT IN ('approved', 'deployed') THEN
                RAISE EXCEPTION 'version % is %, not approved: no deployment of it for %',
                    NEW.version_id, coalesce(served, 'not in that project'), session_user
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER deployment_of_its_job BEFORE INSERT ON deployment "
        "FOR EACH ROW EXECUTE FUNCTION modeldeck_deployment_of_its_job()"
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION modeldeck_deployment_kept() RETURNS trigger AS $$
        BEGIN
            IF {OWNER} THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'what deployment % serves is kept, and a retired deployment stays '
                'retired: changing it refused for %', OLD.id, session_user
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$ LANGUAGE plpgsql
        """
    )
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in KEPT)
    op.execute(
        f"CREATE TRIGGER deployment_kept BEFORE UPDATE ON deployment FOR EACH ROW "
        f"WHEN ({changed} OR (OLD.status = 'retired' AND NEW.status <> 'retired')) "
        "EXECUTE FUNCTION modeldeck_deployment_kept()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS deployment_kept ON deployment")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_deployment_kept()")
    op.execute("DROP TRIGGER IF EXISTS deployment_of_its_job ON deployment")
    op.execute("DROP FUNCTION IF EXISTS modeldeck_deployment_of_its_job()")
