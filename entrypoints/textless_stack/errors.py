"""The bottom of the package: the errors every layer raises, and the CLI maps to exit codes.

UserError: this input, setting or file is wrong, and the message is the whole story (one line, naming
the file): exit 1, no traceback. Anything else is a bug and says its type.
Terminated: SIGTERM arrived (SLURM preemption, time limit, scancel): exit 143.
"""


class UserError(Exception):
    """Wrong input, setting or file: the message names it and says what to do."""


class Terminated(BaseException):
    """SIGTERM: stop now, keeping what is finished. A BaseException, so no `except Exception` swallows it."""
