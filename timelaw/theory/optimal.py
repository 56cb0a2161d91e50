"""The IsoFLOP procedure on the deterministic equivalent: optimal d and loss per compute budget.

Compute f = d x B x steps (one unit per feature per sample; multiply by 2 for multiply-add flops of the
forward pass). For each budget the loss P(f / (d B); d) is minimised over d, and log d* and log P* are
fitted linearly in log f: d* ~ f^xi, P* ~ f^(-eta).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from timelaw.provenance import provenance
from timelaw.theory import volterra
from timelaw.theory.phases import Phase, check_exponents, phase
from timelaw.theory.plrf import DEFAULT_LR_SCALE, stable_sgd_lr, positive_int
from timelaw.theory.spectrum import modes_from_rmt

# Exponents fitted with spectral resolution 0.04 agree with 0.01 to 1e-4 (docs/theory.md) at 1/4 the cost.
SPECTRAL_EPS = 0.04
REL_STEP = 0.02
MIN_D = 4


@dataclass(frozen=True)
class ComputeOptimal:
    """Optimal d and loss per budget, and the exponents fitted to them (with standard errors)."""

    alpha: float
    beta: float
    flops: np.ndarray
    d_opt: np.ndarray  # nan where the minimum lay on the edge of a given d grid
    loss_opt: np.ndarray
    xi: float
    eta: float
    xi_stderr: float
    eta_stderr: float
    phase: Phase
    d_evaluated: np.ndarray  # every d whose loss curve was computed
    provenance: dict = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "alpha": self.alpha, "beta": self.beta, "flops": self.flops.tolist(),
            "d_opt": [None if math.isnan(x) else x for x in self.d_opt.tolist()],
            "loss_opt": [None if math.isnan(x) else x for x in self.loss_opt.tolist()],
            "xi": self.xi, "eta": self.eta, "xi_stderr": self.xi_stderr, "eta_stderr": self.eta_stderr,
            "phase": self.phase.to_dict(), "provenance": self.provenance,
        }


def compute_optimal(alpha: float, beta: float, flops, *, d=None, v_ratio: float = 4.0, batch: int = 1,
                    lr_scale: float = DEFAULT_LR_SCALE, points_per_octave: int = 4) -> ComputeOptimal:
    """IsoFLOP procedure on the random-matrix deterministic equivalent of PLRF.

    flops: budgets f = d x batch x steps. d: candidate sizes; by default the lattice
    d = 2^(k / points_per_octave) (d >= 4) is searched downhill from each budget's predicted optimum, so only
    sizes near the optimum are solved. v = v_ratio x d (v_ratio = inf allowed when 2 alpha > 1);
    lr = lr_scale / sum_{j <= v} j^(-2 alpha), so for 2 alpha < 1 the step shrinks as d grows.
    """
    alpha, beta = check_exponents(alpha, beta)
    flops = _checked_flops(flops)
    batch = positive_int(batch, "batch")
    points_per_octave = positive_int(points_per_octave, "points_per_octave")
    if not v_ratio > 1:
        raise ValueError(f"v_ratio must be > 1 (v = v_ratio x d > d), got {v_ratio!r}")
    if math.isinf(v_ratio) and not 2 * alpha > 1:
        raise ValueError(f"v_ratio must be finite when 2 alpha <= 1 (alpha={alpha})")
    losses = _LossTable(alpha, beta, v_ratio, batch, lr_scale, steps_needed=lambda dd: flops.max() / (dd * batch))
    if d is None:
        sizes = lambda k: round(2.0 ** (k / points_per_octave))  # noqa: E731
        k_range = (math.ceil(points_per_octave * math.log2(MIN_D)), None)
    else:
        grid = sorted({_checked_d(x) for x in np.atleast_1d(d)})
        sizes = grid.__getitem__
        k_range = (0, len(grid) - 1)
    d_opt, loss_opt = _optima(losses, flops, batch, sizes, k_range)
    xi, xi_err, eta, eta_err = _fit_exponents(flops, d_opt, loss_opt)
    record = provenance(
        method="IsoFLOP on the random-matrix deterministic equivalent (Volterra equation), parabola in log d "
               "through the 3 sizes around each minimum, least squares in log f",
        data=f"alpha={alpha}, beta={beta}, v={v_ratio} d, batch={batch}, lr={lr_scale}/tr D",
        source="fitted", spectral_eps=SPECTRAL_EPS, rel_step=REL_STEP,
    )
    return ComputeOptimal(alpha=alpha, beta=beta, flops=flops, d_opt=d_opt, loss_opt=loss_opt, xi=xi, eta=eta,
                          xi_stderr=xi_err, eta_stderr=eta_err, phase=phase(alpha, beta),
                          d_evaluated=np.array(sorted(losses.curves)), provenance=record)


def _checked_flops(flops) -> np.ndarray:
    values = np.sort(np.asarray(flops, dtype=float).ravel())
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"flops must hold at least 2 finite budgets > 0, got {flops!r}")
    return values


def _checked_d(value) -> int:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_D:
        raise ValueError(f"d must hold integers >= {MIN_D}, got {value!r}")
    return int(value)


class _LossTable:
    """Loss curves P(r; d) solved once per d (up to the largest budget) and read at any r >= 1."""

    def __init__(self, alpha, beta, v_ratio, batch, lr_scale, steps_needed: Callable[[int], float]) -> None:
        self.alpha, self.beta, self.v_ratio, self.batch, self.lr_scale = alpha, beta, v_ratio, batch, lr_scale
        self.steps_needed = steps_needed
        self.curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def loss(self, d: int, steps: float) -> float:
        if steps < 1:
            return math.inf
        if d not in self.curves:
            self.curves[d] = self._solve(d)
        grid, loss = self.curves[d]
        return float(np.exp(np.interp(math.log(steps), np.log(grid[1:]), np.log(loss[1:]))))

    def _solve(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        v = math.inf if math.isinf(self.v_ratio) else max(d + 1, round(self.v_ratio * d))
        modes = modes_from_rmt(self.alpha, self.beta, d, v, eps=SPECTRAL_EPS)
        lr = stable_sgd_lr(self.alpha, v, lr_scale=self.lr_scale)
        volterra.check_stable(modes, lr, self.batch)
        grid = volterra.time_grid(max(1, math.ceil(self.steps_needed(d))), REL_STEP)
        return grid, volterra.solve(modes, lr, self.batch, grid)[0]


def _optima(losses: _LossTable, flops, batch, sizes: Callable[[int], int], k_range):
    """Walk downhill on the index k of the sizes from each budget's predicted optimum; parabola at the bottom."""
    lo, hi = k_range
    d_opt, loss_opt = np.full(len(flops), np.nan), np.full(len(flops), np.nan)
    for i, f in enumerate(flops):
        def value(k: int) -> float:
            return losses.loss(sizes(k), f / (sizes(k) * batch))
        k = _start_index(f, batch, sizes, lo, hi, d_opt[:i], flops[:i])
        k = _downhill(value, k, lo, hi)
        if k is None:
            continue
        x = np.log([sizes(k - 1), sizes(k), sizes(k + 1)])
        y = np.log([value(k - 1), value(k), value(k + 1)])
        c2, c1, c0 = np.polyfit(x, y, 2)
        vertex = -c1 / (2 * c2)
        d_opt[i], loss_opt[i] = math.exp(vertex), math.exp(c0 + c1 * vertex + c2 * vertex**2)
    return d_opt, loss_opt


def _start_index(f, batch, sizes, lo, hi, previous_d, previous_f) -> int:
    """Where to begin the search: extrapolate the optima found so far, else d = sqrt(f / B)."""
    found = ~np.isnan(previous_d)
    if found.sum() >= 2:
        slope, offset = np.polyfit(np.log(previous_f[found]), np.log(previous_d[found]), 1)
        target = math.exp(offset + slope * math.log(f))
    elif found.sum() == 1:
        target = previous_d[found][0] * math.sqrt(f / previous_f[found][0])
    else:
        target = math.sqrt(f / batch)
    # nearest index: the lattice is monotone in k, so bisect on it.
    k_lo, k_hi = lo, hi if hi is not None else lo + 1
    while hi is None and sizes(k_hi) < target:
        k_hi = 2 * k_hi - lo + 1
    while k_hi - k_lo > 1:
        mid = (k_lo + k_hi) // 2
        k_lo, k_hi = (mid, k_hi) if sizes(mid) <= target else (k_lo, mid)
    return k_lo if abs(math.log(sizes(k_lo) / target)) <= abs(math.log(sizes(k_hi) / target)) else k_hi


def _downhill(value, k: int, lo: int, hi: int | None) -> int | None:
    """Index of a local minimum reached by stepping downhill from k; None if it lies on the grid's edge."""
    k = max(k, lo + 1)
    if hi is not None:
        k = min(k, hi - 1)
        if k <= lo:
            return None
    while True:
        here, left, right = value(k), value(k - 1), value(k + 1)
        if left < here and left <= right:
            if k - 1 <= lo:
                return None
            k -= 1
        elif right < here:
            if hi is not None and k + 1 >= hi:
                return None
            k += 1
        else:
            return k


def _fit_exponents(flops, d_opt, loss_opt) -> tuple[float, float, float, float]:
    ok = ~np.isnan(d_opt)
    if ok.sum() < 2:
        raise ValueError("the optimum lay on the edge of the d grid for all but one budget: widen d")
    x = np.log(flops[ok])
    xi, xi_err = _slope(x, np.log(d_opt[ok]))
    neg_eta, eta_err = _slope(x, np.log(loss_opt[ok]))
    return xi, xi_err, -neg_eta, eta_err


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and its standard error (nan with fewer than 3 points)."""
    coef, cov = np.polyfit(x, y, 1, cov=True) if len(x) > 3 else (np.polyfit(x, y, 1), None)
    err = math.sqrt(cov[0, 0]) if cov is not None else math.nan
    return float(coef[0]), err
