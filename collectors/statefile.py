"""Small state files of a collector agent (the spool's `cursor`, the agent's `seq`), written so that a full
disk cannot stop them.

`write_state` replaces a file's text atomically (a temporary file, then a rename). A full disk or an
exhausted quota refuses the temporary file's first block; the file is then overwritten in place, in the
block it already holds, which needs no new space (a few bytes in one block: a crash cannot tear them
in practice). It returns the error instead of raising it when neither works (a read-only or failing
disk), so that the caller decides what a stale file costs. Imports only the standard library.

Example:
    >>> write_state(Path("/tmp/kcloud-doc-seq"), "42\\n") is None
    True
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["write_state"]


def write_state(path: Path, text: str) -> OSError | None:
    """Make `text` the content of `path`; None when written, else the error of the atomic attempt."""
    data = text.encode()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return None
    except OSError as exc:
        first = exc
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        with path.open("r+b", buffering=0) as fh:
            fh.write(data)
            fh.truncate(len(data))
    except OSError:
        return first
    return None
