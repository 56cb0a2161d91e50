"""File plumbing shared by every package: atomic writes and reading CSV / JSONL tables of records.

An atomic write goes to a temporary file beside the target, is flushed to disk, then renamed over the
target, so an interrupted or failed write never leaves half a file and never destroys the previous one.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "read_records", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace the file at `path` (creating its folder) with `text`, all or nothing; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
        with os.fdopen(handle, "w", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_records(path: str | os.PathLike) -> list[dict]:
    """The rows of a CSV file (header first; every cell a string) or a JSONL file (one JSON object a line;
    blank lines skipped) as dicts. A line of JSONL that does not parse raises ValueError naming it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with path.open() as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {number} is not valid JSON: {err}") from None
        return rows
    raise ValueError(f"{path}: a table must end in {', '.join(TABLE_SUFFIXES)}")
