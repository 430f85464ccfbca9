"""One exception type for everything a user can get wrong.

The CLI prints its message as a single line and exits with code 2; library callers can catch
it and still see which file, field or seed was at fault.
"""


class PropammError(Exception):
    """A user-facing error whose message names the culprit (file, field or seed)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in the CLI) during a long run, after the work done was saved:
    `kept` says what and where, `resumable` whether the same command with `--resume`
    continues it. A KeyboardInterrupt, so callers that catch that still do."""

    def __init__(self, kept: str, resumable: bool):
        super().__init__(kept)
        self.kept = kept
        self.resumable = resumable


def read_json(path) -> object:
    """Parses a user's JSON file; a missing or malformed file is one line naming it."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise PropammError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise PropammError(f"{path}: not valid JSON (line {exc.lineno})") from None
