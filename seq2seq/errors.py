"""The one exception a user can cause.

Everything a user gets wrong (a bad path, an unknown model, a malformed config, a checkpoint
from another run) raises UserError with one line that says what and how to fix it. The CLI
turns it into that line on stderr and exit code 2; anything else is a bug and keeps its
traceback.
"""


class UserError(Exception):
    """A mistake in the user's input: reported in one line, exit code 2 unless another is given."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def first_line(e: BaseException) -> str:
    """An exception's first non-empty line, for one-line messages about errors from libraries."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
