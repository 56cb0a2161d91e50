"""Where profiles live: shipped with the package, or measured here and kept in the user's cache directory.

Saving is atomic (write a temporary file beside the target, then rename), so a failed or interrupted
calibration never leaves a half-written profile or destroys the previous one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from timelaw.devices.profile import DeviceProfile

__all__ = ["cache_dir", "shipped_dir", "save_profile", "load_profile", "list_profiles", "default_profile",
           "resolve_profile", "DEFAULT_SHIPPED_PROFILE"]

# Used when this machine has not been calibrated. It is a spec sheet: every prediction made with it says so.
DEFAULT_SHIPPED_PROFILE = "a100-sxm-80gb"


def shipped_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "profiles"


def cache_dir() -> Path:
    """$TIMELAW_CACHE_DIR, else $XDG_CACHE_HOME/timelaw, else ~/.cache/timelaw; profiles go in profiles/."""
    root = os.environ.get("TIMELAW_CACHE_DIR")
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "timelaw"
    return Path(root) / "profiles"


def save_profile(profile: DeviceProfile, path: str | os.PathLike | None = None) -> Path:
    """Write the profile as JSON (to the cache directory by default) atomically; returns the path."""
    path = Path(path) if path is not None else cache_dir() / f"{profile.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(profile.to_json())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def list_profiles() -> dict[str, Path]:
    """Profile name -> file; a profile measured here shadows a shipped one of the same name."""
    found = {}
    for directory in (shipped_dir(), cache_dir()):
        if directory.is_dir():
            found.update({p.stem: p for p in sorted(directory.glob("*.json"))})
    return found


def load_profile(name_or_path: str | os.PathLike) -> DeviceProfile:
    """A profile by name (measured here first, then shipped) or by path to its JSON file."""
    path = Path(name_or_path)
    if not path.is_file():
        known = list_profiles()
        if str(name_or_path) not in known:
            raise ValueError(f"no profile named {str(name_or_path)!r} and no such file; "
                             f"known profiles: {', '.join(sorted(known))}")
        path = known[str(name_or_path)]
    return DeviceProfile.model_validate_json(path.read_text())


def default_profile() -> DeviceProfile:
    """The newest profile calibrated on this machine, else the shipped default (a spec sheet)."""
    measured = sorted(cache_dir().glob("*.json"), key=lambda p: p.stat().st_mtime) if cache_dir().is_dir() else []
    if measured:
        return DeviceProfile.model_validate_json(measured[-1].read_text())
    return load_profile(DEFAULT_SHIPPED_PROFILE)


def resolve_profile(profile: DeviceProfile | str | os.PathLike | None) -> DeviceProfile:
    """A DeviceProfile as given, by name or path, or None for this machine's default."""
    if profile is None:
        return default_profile()
    return profile if isinstance(profile, DeviceProfile) else load_profile(profile)
