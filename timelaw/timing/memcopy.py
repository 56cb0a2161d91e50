"""Time linear in the bytes the step's operations move, plus a constant.

The memory-copy proxy of Inbar and Sernau 2024 ("Time Matters: Scaling Laws for Any Budget").
"""
from __future__ import annotations

import numpy as np

from timelaw.timing.base import StepTimeEstimator, step_ledger


class MemcopyEstimator(StepTimeEstimator):
    name = "memcopy"
    feature_names = ("bytes_at_bandwidth_seconds", "constant_seconds")

    def features(self, cfg, setup, step=None):
        step = step_ledger(cfg, setup, step)
        moved = np.asarray(step.total("bytes")) / self.profile.memory_bandwidth
        return np.stack([moved, np.ones_like(moved)], axis=-1)
