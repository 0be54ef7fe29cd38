"""Who is asking: the authenticated user every job, approval and change records.

On SQLite (one machine, its file's permissions) it is the operating-system login of the
process: ``pwd.getpwuid(os.getuid())``, the user the SSH session was authenticated as, not
``$USER`` or ``$LOGNAME``, which anyone can set. On PostgreSQL it is the role the server
authenticated the connection as (``SELECT session_user``), not the role it acts as now
(``current_user``): a member of a group role may ``SET ROLE`` to it (even in the connection
URL's ``options``), and would then approve as somebody else.
"""

from __future__ import annotations

import os
import pwd

from sqlalchemy import text
from sqlalchemy.engine import Engine


def os_login() -> str:
    """The login name of this process's real user id (``uid1234`` when it has no name)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def database_role(engine: Engine) -> str | None:
    """The role a database server authenticated the connection as (its session user, whatever
    role it has set); None for SQLite, which authenticates nobody."""
    if engine.dialect.name == "sqlite":
        return None
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT session_user")).scalar_one())


def unknown_users(engine: Engine, names: list[str]) -> list[str]:
    """Those of ``names`` nobody can be authenticated as here: no PostgreSQL role of that
    name that can log in on the server, or, on SQLite, no login of that name on this host."""
    if engine.dialect.name == "sqlite":
        return [n for n in names if not _is_login(n)]
    with engine.connect() as conn:
        rows = conn.execute(
            # A role that cannot log in (a group role) is nobody's session user.
            text("SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname = ANY(:names)"),
            {"names": names},
        )
        known = {r[0] for r in rows}
    return [n for n in names if n not in known]


def _is_login(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return name == os_login()  # this process's uid without a name (``uid1234``)
    return True


def authenticated_user(engine: Engine) -> str:
    """Who is asking, as the database it is asked of knows them (see the module's doc)."""
    return database_role(engine) or os_login()
