"""Device descriptions: DeviceSpec (hardware facts), DeviceProfile (a spec and the step-time coefficients
fitted on it), and where profiles live. Importing this needs no torch and no estimator; calibration (which
fits the estimators of timelaw.timing) sits above them, in devices/calibrate.py for now."""
from timelaw.devices.profile import AllReduceTable, DeviceProfile, DeviceSpec, MatmulSweep
from timelaw.devices.registry import (
    ProfileError, cache_dir, default_profile, list_profiles, load_profile, read_profile, save_profile, shipped_dir,
)

__all__ = ["DeviceSpec", "DeviceProfile", "MatmulSweep", "AllReduceTable", "load_profile", "read_profile",
           "save_profile", "list_profiles", "default_profile", "cache_dir", "shipped_dir", "ProfileError"]
