"""Provenance records: every fitted or shipped number says where it came from."""
from __future__ import annotations

import datetime as _dt
from typing import Any

from timelaw._version import __version__


def provenance(method: str, data: str, source: str = "measured", **extra: Any) -> dict[str, Any]:
    """A JSON-ready record of how a number was obtained.

    `source` is "measured", "fitted", "published" or "spec sheet" (a number nobody measured here).
    """
    record = {
        "method": method,
        "data": data,
        "source": source,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "timelaw_version": __version__,
    }
    record.update(extra)
    return record
