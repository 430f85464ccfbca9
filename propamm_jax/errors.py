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
        data = path.read_bytes()
    except OSError as exc:
        raise PropammError(f"{path}: cannot read ({exc.strerror})") from None
    if data.startswith(b"PAR1"):
        raise PropammError(f"{path}: a Parquet table, not JSON; give the .json file")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PropammError(f"{path}: not valid JSON (binary content)") from None
    except json.JSONDecodeError as exc:
        raise PropammError(f"{path}: not valid JSON (line {exc.lineno})") from None


def check_output(path, suffixes: tuple[str, ...] = (), option: str = "--output",
                 directory: bool = False) -> None:
    """Checks, before any work starts, that `path` can be written: a known extension (when
    `suffixes` is given), a file not named like a directory, and an existing writable folder
    to hold it (for a `directory` output, the nearest existing ancestor, since it is created
    with its parents)."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_dir() and not directory:
        raise PropammError(f"{option} {path}: is a directory; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise PropammError(f"{option} {path}: unknown extension {path.suffix or '(none)'!r}; "
                           f"use {', '.join(suffixes)}")
    if directory:
        if path.exists() and not path.is_dir():
            raise PropammError(f"{option} {path}: exists and is not a directory")
        parent = path
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    else:
        parent = path.parent
    if not parent.is_dir():
        problem = "does not exist" if not parent.exists() else "is not a directory"
        raise PropammError(f"{option} {path}: {parent} {problem}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PropammError(f"{option} {path}: {parent} is not writable")
