"""User-facing errors.

Anything a user can cause (a missing folder, an empty data set, a bad CSV) raises
:class:`FGDError` with a one-line message; the CLI prints it and exits with status 2
instead of showing a traceback.
"""


class FGDError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""
