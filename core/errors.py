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
