"""What the config readers share: loading a file, refusing what timelaw cannot represent, naming the field."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["UnsupportedConfigError", "load_mapping", "refuse", "require"]


class UnsupportedConfigError(ValueError):
    """A model config names a feature TransformerConfig cannot represent exactly (the message names the field)."""


def load_mapping(config: Any, file_name: str = "config.json") -> tuple[Mapping, str]:
    """(the config as a mapping, where it came from): a dict, a JSON file, or a directory holding `file_name`."""
    if isinstance(config, Mapping):
        return config, "config"
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"config must be a dict or a path to a JSON file, not {type(config).__name__}")
    path = Path(config)
    if path.is_dir():
        path = path / file_name
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"cannot read model config {str(path)!r}: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of config fields, got {type(data).__name__}")
    return data, str(path)


def refuse(source: str, field: str, value, why: str) -> UnsupportedConfigError:
    return UnsupportedConfigError(f"{source}: {field}={value!r}: {why}; timelaw does not approximate it")


def require(data: Mapping, source: str, *names: str):
    """The first of `names` present in `data` (not None), or an error naming them."""
    for name in names:
        if data.get(name) is not None:
            return data[name]
    raise ValueError(f"{source}: missing required field {' or '.join(repr(n) for n in names)}")
