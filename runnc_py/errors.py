"""The one exception type the library raises for bad input or a failed action.

Only the CLI turns it into a message and an exit status (crun's rule: thin commands, fat
library). The message is a single line that names what is wrong and where.
"""

from __future__ import annotations


class RunncError(Exception):
    """A failure to report to the user as one line, with an exit status."""

    def __init__(self, message: str, *, where: str | None = None, status: int = 1) -> None:
        self.message = message
        self.where = where
        self.status = status
        super().__init__(self.line())

    def line(self) -> str:
        """The one-line form: `WHERE: MESSAGE` (newlines folded so logs stay one entry)."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return " ".join(text.split("\n"))
