"""The rule of thumb everyone uses: total flops / (peak x utilisation). The baseline to beat."""
from __future__ import annotations

import numpy as np

from timelaw.ledger import ledger
from timelaw.timing.base import StepTimeEstimator, as_shapes


class FlopsEstimator(StepTimeEstimator):
    name = "flops"
    feature_names = ("flops_at_peak_seconds",)  # its coefficient is 1 / utilisation

    def features(self, cfg, setup):
        step = ledger(as_shapes(cfg, setup), setup)
        return np.stack([np.asarray(step.total("flops")) / self.profile.peak(setup.precision)], axis=-1)
