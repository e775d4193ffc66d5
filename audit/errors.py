"""Errors a user can act on, and the exit codes a scheduler sees.

Messages name the file and the problem; they never contain episode-level values.
"""

EXIT_OK = 0
EXIT_FINDINGS = 1  # findings at or above --fail-on
EXIT_USER_ERROR = 2  # usage or input error
EXIT_INTERNAL_ERROR = 3  # a bug: details go to a log file, not the console
EXIT_VOLUME = 4  # the audit ran, but the export shrank or was empty (see audit.volume)


class UserError(Exception):
    """A problem with the command line, the inputs or a catalogue file; exit code 2."""


class InputError(UserError):
    """A problem with one input file."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
