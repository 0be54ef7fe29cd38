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
