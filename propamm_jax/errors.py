"""One exception type for everything a user can get wrong.

The CLI prints its message as a single line and exits with code 2; library callers can catch
it and still see which file, field or seed was at fault.
"""


class PropammError(Exception):
    """A user-facing error whose message names the culprit (file, field or seed)."""
