"""One exception root for everything a user or operator can get wrong.

``str(error)`` is a single line that says what is wrong, where (file, row, column or
``section.key``) and what to do. The CLI prints it without a traceback and exits non-zero.
"""


class HeavyOptError(Exception):
    """Root of Heavy Optimizer's user-facing errors."""

    exit_code = 1


class ConfigError(HeavyOptError):
    """A configuration key is unknown or its value is invalid; the message names ``section.key``."""

    exit_code = 2


class InputError(HeavyOptError):
    """The input CSV is unusable; the message names the file, row and column."""

    exit_code = 3


class BackendUnavailable(HeavyOptError):
    """A storage or compute backend cannot be used (missing driver, unreachable server, locked file)."""

    exit_code = 4


class JobFailed(HeavyOptError):
    """A job could not complete; the message carries the reason."""

    exit_code = 5
