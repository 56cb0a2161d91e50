"""Loss laws: published presets, careful fits with uncertainty, and compute- or data-constrained allocation.

    law = fit_loss_law(runs, form="chinchilla")      # runs: DataFrame / dict / CSV or JSONL path
    law.params_, law.ci_                             # constants and bootstrap intervals
    law.predict(N, D), law.predict_interval(N, D)    # vectorised over numpy arrays
    preset("epoch2024").predict(N, D)                # also hoffmann2022, muennighoff2023, kaplan2020
    compute_optimal(law, flops).n_params             # N*(C), also .tokens, .loss

See docs/laws.md for the equations, the fitting procedure and the reproduced published results.
"""
from timelaw.laws.allocation import (
    Allocation,
    compute_optimal,
    compute_optimal_exponents,
    optimal_params_for_tokens,
)
from timelaw.laws.base import LossLaw
from timelaw.laws.batch import CriticalBatch, fit_critical_batch
from timelaw.laws.ranges import FitRange
from timelaw.laws.fitting import DegenerateFitWarning
from timelaw.laws.forms import (
    FORMS,
    ChinchillaLaw,
    ComputeOnlyLaw,
    DataConstrainedLaw,
    KaplanLaw,
    ShapeDataConstrainedLaw,
    ShapeLaw,
    fit_loss_law,
    make_law,
)
from timelaw.laws.io import load_law
from timelaw.laws.presets import PRESET_NAMES, preset
from timelaw.laws.tables import RunTable, read_runs

__all__ = [
    "Allocation",
    "ChinchillaLaw",
    "ComputeOnlyLaw",
    "DataConstrainedLaw",
    "DegenerateFitWarning",
    "FORMS",
    "KaplanLaw",
    "LossLaw",
    "PRESET_NAMES",
    "RunTable",
    "ShapeDataConstrainedLaw",
    "ShapeLaw",
    "CriticalBatch",
    "FitRange",
    "compute_optimal",
    "compute_optimal_exponents",
    "fit_critical_batch",
    "fit_loss_law",
    "load_law",
    "make_law",
    "optimal_params_for_tokens",
    "preset",
    "read_runs",
]
