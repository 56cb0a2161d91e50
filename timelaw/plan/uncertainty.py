"""The loss band of a prediction: the loss law's uncertainty and the step-time model's, in quadrature.

Time: a relative error r on the step time moves the tokens to tokens / (1 + r) or tokens x (1 + r). r is the
90th percentile of the time model's relative errors when they are known (a model fitted with
fit_time_model), else 2 x a calibrated profile's held-out MAPE (about the 90% point of normal errors),
else a stated default: 50% for spec-sheet profiles, whose efficiencies are assumed, 20% for a measured
profile without validation.

Law: the central 90% of the loss over the law's bootstrap samples when it has them. A published preset
carries only marginal intervals; varying each constant alone over its interval would ignore that a power
law's scale and exponent are fitted together (a larger alpha comes with a larger A), and would give bands of
+-1 nat. So each pair (A, alpha), (B, beta) moves along its correlation ridge: the exponent spans its
interval while the scale follows, pivoting at the size where the two intervals agree,
log N0 = log(A_high / A_low) / (alpha_high - alpha_low); other constants (E) vary alone. The band widens
as a prediction moves away from the pivot, as extrapolations should.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timelaw.plan.evaluate import loss_for_tokens

__all__ = ["Band", "time_uncertainty", "law_deviations", "loss_band", "BAND_LEVEL"]

BAND_LEVEL = 0.9
DEFAULT_SPEC_SHEET_TIME_ERROR = 0.5
DEFAULT_MEASURED_TIME_ERROR = 0.2
RIDGE_PAIRS = (("A", "alpha"), ("B", "beta"))  # (scale, exponent) of each power-law term


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    description: str


def time_uncertainty(estimator, device, method: str) -> tuple[float, str]:
    """(relative step-time error r, where r comes from)."""
    residuals = getattr(estimator, "residuals_", None)
    if residuals is not None and np.size(residuals):
        r = float(np.quantile(np.abs(residuals), BAND_LEVEL))
        return r, f"time model's 90th-percentile relative residual ({r:.0%}, {np.size(residuals)} fitted steps)"
    stats = device.validation.get(method) or {}
    for key, kind in (("holdout_mape_percent", "held-out"), ("mape", "held-out"), ("fit_mape_percent", "fit")):
        mape = stats.get(key)
        if mape is not None and math.isfinite(float(mape)):
            r = 2.0 * float(mape) / 100.0
            return r, f"2 x the profile's {kind} {method} MAPE of {float(mape):.1f}% ({r:.0%})"
    if not device.calibrated:
        r = DEFAULT_SPEC_SHEET_TIME_ERROR
        return r, f"assumed +-{r:.0%} step time (spec-sheet profile, not measured)"
    r = DEFAULT_MEASURED_TIME_ERROR
    return r, f"assumed +-{r:.0%} step time (profile has no validation error)"


def _ridge_variants(law) -> list:
    """Laws at the ends of each constant's interval, scale and exponent moved together (see module doc)."""
    params, ci = law.params_, law.ci_
    variants, paired = [], set()
    for scale, exponent in RIDGE_PAIRS:
        if scale in ci and exponent in ci and ci[exponent][1] > ci[exponent][0]:
            (s_lo, s_hi), (e_lo, e_hi) = ci[scale], ci[exponent]
            log_pivot = math.log(s_hi / s_lo) / (e_hi - e_lo)
            for e in (e_lo, e_hi):
                moved = math.exp(math.log(params[scale]) + (e - params[exponent]) * log_pivot)
                variants.append({**params, exponent: e, scale: moved})
            paired |= {scale, exponent}
    for name, (lo, hi) in ci.items():
        if name not in paired and name in params:
            variants += [{**params, name: lo}, {**params, name: hi}]
    return [type(law)(p) for p in variants]


def law_deviations(law_choice, n, tokens, unique_tokens, loss) -> tuple[float, float, str] | None:
    """(loss - low, high - loss, description) from the law's own uncertainty, or None if it has none."""
    law = law_choice.law
    if getattr(law, "samples_", None) is not None:
        low, high = law.predict_interval(n, tokens, unique_tokens, level=BAND_LEVEL)
        return loss - float(low), float(high) - loss, f"law's {BAND_LEVEL:.0%} bootstrap band"
    if getattr(law, "ci_", None):
        losses = np.array([float(v.predict(n, tokens, unique_tokens)) for v in _ridge_variants(law)])
        shifts = losses.reshape(-1, 2) - loss  # one row per constant (or ridge): its two interval ends
        # each constant contributes its largest move either way; independent constants add in quadrature
        down = math.sqrt(float(np.sum(np.clip(-shifts, 0, None).max(axis=1) ** 2)))
        up = math.sqrt(float(np.sum(np.clip(shifts, 0, None).max(axis=1) ** 2)))
        level = f"{law.ci_level_:.0%} " if getattr(law, "ci_level_", None) else ""
        return down, up, f"law's {level}parameter intervals (scale and exponent moved together)"
    return None


def loss_band(law_choice, n, tokens, unique_tokens, loss, time_error: float, time_source: str) -> Band:
    """The loss band around `loss` for `tokens` trained by a model with law-N `n`."""
    slower = float(loss_for_tokens(law_choice, n, tokens / (1.0 + time_error), unique_tokens))
    faster = float(loss_for_tokens(law_choice, n, tokens * (1.0 + time_error), unique_tokens))
    down, up = loss - faster, slower - loss
    parts = [time_source]
    law_part = law_deviations(law_choice, n, tokens, unique_tokens, loss)
    if law_part is None:
        parts.append("the law carries no intervals, so its own uncertainty is not included")
    else:
        down, up = math.hypot(down, law_part[0]), math.hypot(up, law_part[1])
        parts.append(law_part[2])
    return Band(low=loss - down, high=loss + up, description="; ".join(parts))
