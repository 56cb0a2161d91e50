"""Device descriptions: DeviceSpec (hardware facts), DeviceProfile (a spec and the step-time coefficients
fitted on it), System (nodes of a device and the links between them), and where profiles and systems live. Importing this needs no torch and no estimator; calibration (which
fits the estimators of timelaw.timing) sits above them, in devices/calibrate.py for now."""
from timelaw.devices.profile import AllReduceTable, DeviceProfile, DeviceSpec, MatmulSweep
from timelaw.devices.registry import (
    ProfileError, cache_dir, default_profile, list_profiles, load_profile, read_profile, save_profile, shipped_dir,
)
from timelaw.devices.system import Link, System, SystemFileError, list_systems, load_system, read_system, save_system

__all__ = ["DeviceSpec", "DeviceProfile", "MatmulSweep", "AllReduceTable", "load_profile", "read_profile",
           "save_profile", "list_profiles", "default_profile", "cache_dir", "shipped_dir", "ProfileError",
           "System", "Link", "load_system", "read_system", "save_system", "list_systems", "SystemFileError"]
