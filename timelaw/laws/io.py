"""Reading a loss law back from JSON (written by `law.to_json()`)."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timelaw.laws.base import LossLaw
from timelaw.laws.forms import FORMS


def load_law(source: str | os.PathLike | Mapping[str, Any]) -> LossLaw:
    """A law from a preset name (as predict_loss(law=...) takes), a dict (law.to_dict()), JSON text
    (law.to_json()), or a path to a JSON file. A file of the same name as a preset wins over the preset."""
    from timelaw.laws.presets import PRESET_NAMES, preset

    if isinstance(source, str) and source in PRESET_NAMES and not Path(source).is_file():
        return preset(source)
    if not isinstance(source, (str, os.PathLike, Mapping)):
        raise TypeError(f"load_law takes a preset name, a path, JSON text or a dict, not {type(source).__name__}")
    record = source if isinstance(source, Mapping) else _read_record(source)
    form = record.get("form")
    if form not in FORMS:
        raise ValueError(f"not a timelaw loss law: 'form' is {form!r}, expected one of {', '.join(FORMS)}")
    return FORMS[form].from_dict(record)


def _read_record(source: str | os.PathLike) -> Mapping[str, Any]:
    text = str(source)
    if not text.lstrip().startswith("{"):
        path = Path(source)
        if not path.is_file():
            from timelaw.laws.presets import PRESET_NAMES

            raise ValueError(f"{text!r} is neither JSON text nor an existing file (nor a preset: "
                             f"{', '.join(PRESET_NAMES)})")
        text = path.read_text()
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"loss-law JSON is not valid: {err}") from None
    if not isinstance(record, Mapping):
        raise ValueError("loss-law JSON must be an object with 'form' and 'params'")
    return record
