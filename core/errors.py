"""The one error type for what a user did wrong."""


class ModelDeckError(Exception):
    """A refusal fit to show a user as one line (``error: <message>``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(ModelDeckError):
    """An id or name that names nothing."""


def first_line(exc: BaseException, default: str | None = None) -> str:
    """An error's message in one line: its first line that is not blank, else ``default``
    (else the error's type name)."""
    return next(
        (line.strip() for line in str(exc).splitlines() if line.strip()),
        default or type(exc).__name__,
    )


# SQLite's primary result codes (sqlite3.h), read without importing sqlite3 here.
SQLITE_BUSY, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 5, 8, 11, 13, 26


def database_refusal(exc: BaseException) -> ModelDeckError | None:
    """The one-line refusal for an error of the database itself (SQLAlchemy's, the driver's
    underneath) that a command cannot get past: a role refused (``permission_refusal``), a
    SQLite file locked by another process past the busy timeout, a full disk, a damaged
    file, a lost connection. None for any other error (a bug: its traceback is wanted)."""
    refused = permission_refusal(exc)
    orig = getattr(exc, "orig", None)
    if refused is not None or orig is None:
        return refused
    reason = first_line(orig, "")
    sqlstate = getattr(orig, "sqlstate", None) or ""
    # SQLite's primary result code (the low byte of an extended one), not its message: a
    # "malformed JSON" is no damaged file.
    code = getattr(orig, "sqlite_errorcode", None)
    code = code & 0xFF if isinstance(code, int) else None
    if code == SQLITE_BUSY:
        return ModelDeckError(
            "the database is locked: a write transaction has held it for longer than "
            "modeldeck waits (another process: a sqlite3 shell, a backup?); try again"
        )
    if code == SQLITE_READONLY:
        return ModelDeckError(
            f"the database is read-only here ({reason}): this command changes it; "
            "run it where the data home can be written"
        )
    if code == SQLITE_FULL or sqlstate == "53100":
        return ModelDeckError(f"the database's disk is full ({reason}): free some space")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return ModelDeckError(
            f"the database file is damaged ({reason}): restore it from a backup, or "
            "`sqlite3 FILE .recover` into a new one"
        )
    if connection_lost(exc):
        return ModelDeckError(f"lost the connection to the database server ({reason})")
    return None


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the database server's connection going away or not to be had (a
    restart, an administrator ending it, the server down meanwhile): a statement that can
    work again on a new connection."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        return True
    if getattr(exc, "connection_invalidated", False):
        return True
    # psycopg's failure to connect at all (refused, timed out) carries no SQLSTATE.
    return (
        type(orig).__name__ == "OperationalError"
        and not sqlstate
        and (type(orig).__module__.startswith("psycopg"))
    )


def permission_refusal(exc: BaseException) -> ModelDeckError | None:
    """The one-line refusal for a statement the PostgreSQL server refused this role
    (SQLSTATE 42501), with what to do about it; None for any other error."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) != "42501":
        return None
    reason = first_line(orig, "denied")
    if reason.startswith("permission denied for"):  # a role without the team's grants
        return ModelDeckError(
            f"the database refused this role: {reason} (give it the GRANTs in the README's "
            "section 'A team: who may approve, and what ran when')"
        )
    if reason.startswith("must be owner of"):  # a schema change, by a member
        return ModelDeckError(
            f"the database refused this role: {reason} (the schema is behind this modeldeck: "
            "`modeldeck db upgrade` as the role that owns the tables brings it up to date)"
        )
    return ModelDeckError(reason)  # modeldeck's own rules (append-only tables, approvers)
