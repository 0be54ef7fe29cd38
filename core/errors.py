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
    if "database is locked" in reason:
        return ModelDeckError(
            "the database is locked: another process has held a write transaction on it for "
            "longer than modeldeck waits (a sqlite3 shell, a backup?); try again once it ends"
        )
    if "database or disk is full" in reason or sqlstate == "53100":
        return ModelDeckError(f"the database's disk is full ({reason}): free some space")
    if "malformed" in reason or "file is not a database" in reason:
        return ModelDeckError(
            f"the database file is damaged ({reason}): restore it from a backup, or "
            "`sqlite3 FILE .recover` into a new one"
        )
    if connection_lost(exc):
        return ModelDeckError(f"lost the connection to the database server ({reason})")
    return None


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the database server's connection going away (a restart, an
    administrator ending it): a statement that can work again on a new connection."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


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
