"""Device profiles and calibration. Importing this needs no torch; running microbenchmarks does."""
from timelaw.devices.profile import AllReduceTable, DeviceProfile, MatmulSweep
from timelaw.devices.registry import (
    cache_dir, default_profile, list_profiles, load_profile, save_profile, shipped_dir,
)

__all__ = ["DeviceProfile", "MatmulSweep", "AllReduceTable", "load_profile", "save_profile", "list_profiles",
           "default_profile", "cache_dir", "shipped_dir"]
