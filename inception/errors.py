"""Errors shared by the whole package."""


class UsageError(ValueError):
    """Bad input from the user: the command line prints it as one clear message, without a
    traceback."""
