"""The loss band of a prediction: the loss law's uncertainty and the step-time model's, in quadrature.

Time: a relative error r on the step time moves the tokens to tokens / (1 + r) or tokens x (1 + r). r is the
90th percentile of the time model's relative errors when they are known (a model fitted with
fit_time_model), else 2 x a calibrated profile's held-out MAPE (about the 90% point of normal errors),
else a stated default: 50% for spec-sheet profiles, whose efficiencies are assumed, 20% for a measured
profile without validation.

Law: the central 90% of the loss over the law's bootstrap samples when it has them. That is the uncertainty
of the mean law only; one new run also lands off the law by as much as the fitted runs did. So a fitted law
(one with residuals) adds its runs' scatter in quadrature: the 90% range of a normal error in log loss whose
standard deviation is the residuals' RMS, counted with the degrees of freedom the fit used (without it the
band held a quarter of the wall-clock benchmark's held-out runs, not 90%: docs/planner.md). A published preset
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
from statistics import NormalDist

import numpy as np

from timelaw.plan.evaluate import loss_for_tokens

__all__ = ["Band", "time_uncertainty", "law_deviations", "run_scatter", "law_band_coverage", "loss_band",
           "BAND_LEVEL"]

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
    return [type(law)(p, critical_batch=law.critical_batch_) for p in variants]


def run_scatter(law) -> tuple[float, int] | None:
    """(RMS of the fitted runs' log residuals over the fit's degrees of freedom, number of runs), or None for a
    law that was not fitted here (a preset) or has no more runs than constants."""
    residuals = getattr(law, "residuals_", None)
    if residuals is None or residuals.size <= len(law.param_names):
        return None
    return math.sqrt(float(np.sum(residuals ** 2)) / (residuals.size - len(law.param_names))), int(residuals.size)


def law_deviations(law_choice, n, tokens, unique_tokens, loss, inputs=None) -> tuple[float, float, str] | None:
    """(loss - low, high - loss, description) from the law's own uncertainty and, for a fitted law, its runs'
    scatter around it; None if the law carries neither. `inputs`: the law's other inputs (evaluate.law_inputs)."""
    law = law_choice.law
    mean_law = _mean_law_deviations(law, n, tokens, unique_tokens, loss, inputs or {})
    scatter = run_scatter(law)
    if scatter is None:
        return mean_law
    rms, runs = scatter
    z = NormalDist().inv_cdf((1 + BAND_LEVEL) / 2)
    down, up = loss * (1 - math.exp(-z * rms)), loss * (math.exp(z * rms) - 1)
    what = f"fitted runs' scatter around the law ({rms:.1%} RMS in log loss, {runs} runs)"
    if mean_law is None:
        return down, up, what
    return math.hypot(mean_law[0], down), math.hypot(mean_law[1], up), f"{mean_law[2]} and the {what}"


def _mean_law_deviations(law, n, tokens, unique_tokens, loss, inputs) -> tuple[float, float, str] | None:
    """The uncertainty of the law's constants alone: bootstrap samples, else intervals, else None."""
    if getattr(law, "samples_", None) is not None:
        low, high = law.predict_interval(n, tokens, unique_tokens, level=BAND_LEVEL, **inputs)
        return loss - float(low), float(high) - loss, f"law's {BAND_LEVEL:.0%} bootstrap band"
    if getattr(law, "ci_", None):
        losses = np.array([float(v.predict(n, tokens, unique_tokens, **inputs)) for v in _ridge_variants(law)])
        shifts = losses.reshape(-1, 2) - loss  # one row per constant (or ridge): its two interval ends
        # each constant contributes its largest move either way; independent constants add in quadrature
        down = math.sqrt(float(np.sum(np.clip(-shifts, 0, None).max(axis=1) ** 2)))
        up = math.sqrt(float(np.sum(np.clip(shifts, 0, None).max(axis=1) ** 2)))
        level = f"{law.ci_level_:.0%} " if getattr(law, "ci_level_", None) else ""
        return down, up, f"law's {level}parameter intervals (scale and exponent moved together)"
    return None


def law_band_coverage(law_choice, n, tokens, measured, unique_tokens=None) -> float:
    """Share of measured losses (runs with law-N `n` trained on `tokens`) inside the law's BAND_LEVEL band: how
    honest the band is, when the runs were not fitted on."""
    inside = []
    for n_run, tokens_run, loss_run in zip(np.ravel(n), np.ravel(tokens), np.ravel(measured)):
        loss = float(loss_for_tokens(law_choice, n_run, tokens_run, unique_tokens))
        down, up, _ = law_deviations(law_choice, n_run, tokens_run, unique_tokens, loss)
        inside.append(loss - down <= loss_run <= loss + up)
    return float(np.mean(inside))


def extrapolation_factor(excursions) -> float:
    """How much wider the law's band gets outside its fitted range: 1 + the decades outside, summed over the
    quantities (tokens per parameter left out: it follows from N and D)."""
    return 1.0 + sum(e.decades for e in excursions if e.name != "tokens_per_param")


def loss_band(law_choice, n, tokens, unique_tokens, loss, time_error: float, time_source: str,
              inputs=None, excursions=()) -> Band:
    """The loss band around `loss` for `tokens` trained by a model with law-N `n` (other law inputs in
    `inputs`); the law's part widens by extrapolation_factor(excursions) outside its fitted range."""
    inputs = inputs or {}
    slower = float(loss_for_tokens(law_choice, n, tokens / (1.0 + time_error), unique_tokens, **inputs))
    faster = float(loss_for_tokens(law_choice, n, tokens * (1.0 + time_error), unique_tokens, **inputs))
    down, up = loss - faster, slower - loss
    parts = [time_source]
    law_part = law_deviations(law_choice, n, tokens, unique_tokens, loss, inputs)
    if law_part is None:
        parts.append("the law carries no intervals, so its own uncertainty is not included")
    else:
        widen = extrapolation_factor(excursions)
        down, up = math.hypot(down, widen * law_part[0]), math.hypot(up, widen * law_part[1])
        parts.append(law_part[2] if widen == 1 else f"{law_part[2]}, x{widen:.2f} outside the law's fitted range")
    # A band is a range of possible losses too: never above a uniform guess, never below the law's floor.
    ceiling = math.log(float(inputs["vocab_size"])) if inputs.get("vocab_size") is not None else math.inf
    floor = law_choice.law.floor() if hasattr(law_choice.law, "floor") else 0.0
    return Band(low=max(loss - down, floor), high=min(loss + up, ceiling), description="; ".join(parts))
