"""Errors that are the user's to fix.

The CLI prints these as one line and exits non-zero; anything else is a bug and
keeps its traceback.
"""


class DCGANError(Exception):
    """A problem with the user's input (path, option value, file), not a bug."""


class ConfigError(DCGANError, ValueError):
    """An option value that no model or trainer can use."""


class DataError(DCGANError):
    """A dataset that is missing, unreadable or unusable."""


class CheckpointError(DCGANError):
    """A file that is not a readable dcgan checkpoint."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (some, like tarfile's, run over several lines)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip().rstrip(":")
    return type(exc).__name__
