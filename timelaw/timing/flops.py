"""The rule of thumb everyone uses: total flops / (peak x utilisation). The baseline to beat."""
from __future__ import annotations

import numpy as np

from timelaw.timing.base import StepTimeEstimator, step_ledger


class FlopsEstimator(StepTimeEstimator):
    name = "flops"
    feature_names = ("flops_at_peak_seconds",)  # its coefficient is 1 / utilisation

    def features(self, cfg, setup, step=None):
        step = step_ledger(cfg, setup, step)
        return np.stack([np.asarray(step.total("flops")) / self.profile.peak(setup.precision)], axis=-1)
