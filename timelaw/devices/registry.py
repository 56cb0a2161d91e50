"""Where profiles live: shipped with the package, or measured here and kept in the user's cache directory.

Saving is atomic (write a temporary file beside the target, then rename), so a failed or interrupted
calibration never leaves a half-written profile or destroys the previous one.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from pydantic import ValidationError

from timelaw.devices.profile import DeviceProfile
from timelaw.files import atomic_write_text

__all__ = ["cache_dir", "shipped_dir", "save_profile", "load_profile", "read_profile", "list_profiles",
           "default_profile", "resolve_profile", "ProfileError", "DEFAULT_SHIPPED_PROFILE"]

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
    return atomic_write_text(path, profile.to_json())


def list_profiles() -> dict[str, Path]:
    """Profile name -> file; a profile measured here shadows a shipped one of the same name."""
    found = {}
    for directory in (shipped_dir(), cache_dir()):
        if directory.is_dir():
            found.update({p.stem: p for p in sorted(directory.glob("*.json"))})
    return found


def load_profile(name_or_path: str | os.PathLike) -> DeviceProfile:
    """A profile by name (measured here first, then shipped) or by path to its JSON file."""
    return read_profile(named_file(name_or_path, list_profiles, "profile"))


def named_file(name_or_path: str | os.PathLike, known, kind: str) -> Path:
    """The file `name_or_path` names: a path to an existing file, else a name among `known()` (name -> path);
    a ValueError lists the known names of this `kind` ("profile", "system")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = known()
    if str(name_or_path) not in found:
        raise ValueError(f"no {kind} named {str(name_or_path)!r} and no such file; "
                         f"known {kind}s: {', '.join(sorted(found))}")
    return found[str(name_or_path)]


class ProfileError(ValueError):
    """A profile file that cannot be read, is not JSON, or holds a value outside its allowed range."""


def read_profile(path: str | os.PathLike) -> DeviceProfile:
    """The profile in a JSON file, validated; a bad file raises ProfileError naming the file and the field."""
    return read_validated(path, DeviceProfile, "profile", ProfileError)


def read_validated(path: str | os.PathLike, model, kind: str, error_class):
    """`model` (a pydantic class) from the JSON file at `path`; an unreadable, damaged or invalid file raises
    `error_class` naming the file, and for an invalid value each field and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise error_class(f"cannot read {kind} file {path}: {error.strerror or error}") from None
    try:
        json.loads(text)
    except ValueError as error:
        raise error_class(f"{kind} file {path} is not valid JSON (truncated or damaged?): {error}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or kind}: {e['msg']}"
                             for e in error.errors(include_url=False))
        raise error_class(f"{kind} file {path} is not a valid {kind}: {problems}") from None


def _gpu_names() -> list[str]:
    """Names of the CUDA GPUs torch sees here (none without torch or a GPU)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def measured_here(profile: DeviceProfile, gpu_names=None) -> bool:
    """Whether `profile` was calibrated on this machine's device: this host, and this CPU (core count and
    architecture) or a GPU of the same name as one present now."""
    facts = profile.provenance.get("device") or {}
    if not profile.calibrated or facts.get("host", platform.node()) != platform.node():
        return False
    if profile.device_type == "cpu":
        return str(facts.get("name", profile.name)).startswith(f"cpu-{os.cpu_count()}core-{platform.machine()}-")
    if profile.device_type == "cuda":
        return facts.get("name") in (_gpu_names() if gpu_names is None else gpu_names)
    return platform.system() == "Darwin" and platform.machine() == "arm64"  # mps: Apple silicon


def default_profile() -> DeviceProfile:
    """The profile calibrated on this machine's device (an accelerator before the CPU, then the newest),
    else the shipped default (a spec sheet). Profiles in the cache from other devices or hosts are ignored,
    as are files that do not load."""
    directory = cache_dir()
    candidates = []
    for path in (directory.glob("*.json") if directory.is_dir() else ()):
        try:
            candidates.append((read_profile(path), path.stat().st_mtime))
        except ProfileError:
            continue
    gpus = _gpu_names() if any(p.device_type == "cuda" and p.calibrated for p, _ in candidates) else []
    here = [(p.device_type != "cpu", mtime, p) for p, mtime in candidates if measured_here(p, gpus)]
    if here:
        return max(here, key=lambda c: c[:2])[2]
    return load_profile(DEFAULT_SHIPPED_PROFILE)


def resolve_profile(profile: DeviceProfile | str | os.PathLike | None) -> DeviceProfile:
    """A DeviceProfile as given, by name or path, or None for this machine's default."""
    if profile is None:
        return default_profile()
    return profile if isinstance(profile, DeviceProfile) else load_profile(profile)
