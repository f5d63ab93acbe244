"""The project's error types.

The library raises :class:`UserError` for a user's mistake (a bad file, an impossible
option value); the CLI prints its message on one line to stderr and exits with code 2.
:class:`CheckFailed` means a check ran and did not hold; the CLI exits with code 1.
"""


class AlrpError(Exception):
    """Base class of the errors this project raises on purpose."""

    exit_code = 1


class UserError(AlrpError, ValueError):
    """A user's mistake: bad input file or option. Exit code 2, one-line message."""

    exit_code = 2


class CheckFailed(AlrpError):
    """A check ran to completion and did not hold. Exit code 1."""

    exit_code = 1
