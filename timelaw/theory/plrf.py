"""Power-law random features (PLRF) trained by one-pass SGD: simulation, deterministic equivalent, and the
sum-of-power-laws approximation of the loss curve.

The model (Paquette, Paquette, Xiao, Pennington 2024, "4+3 Phases of Compute-Optimal Neural Scaling Laws"):
x in R^v with x_j = j^(-alpha) z_j, z standard normal; target <x, b>, b_j = j^(-beta); features W^T x with
W in R^(v x d) of N(0, 1/d) entries; loss P(theta) = 1/2 E[(<W^T x, theta> - <x, b>)^2]; SGD from theta = 0
with the mean gradient over a batch of B fresh samples and constant step lr. Compute f = d x B x steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import exp1, gamma, gammaincc, zeta

from timelaw.theory import volterra
from timelaw.theory.phases import check_exponents
from timelaw.theory.spectrum import data_scales, modes_from_rmt, modes_from_w, trace_d

DEFAULT_LR_SCALE = 0.5  # lr = DEFAULT_LR_SCALE / tr D: ||K|| ~ lr tr(H) / (2 B) = 0.25 at batch 1
EVERY_STEP_UP_TO = 10_000  # longer curves are reported on a geometric grid (see volterra.time_grid)
MAX_EVERY_STEP = 1_000_000  # one Python-level step each: beyond this, blocks are required


# --- validation -----------------------------------------------------------------------------------------


def check_sizes(alpha: float, d, v, steps=None, batch=1) -> tuple[int, float, int | None, int]:
    """Validate d, v (v >= d; v = inf only when 2 alpha > 1), steps >= 1 and batch >= 1."""
    d = positive_int(d, "d")
    if v is None or (isinstance(v, float) and math.isinf(v)):
        if not 2 * alpha > 1:
            raise ValueError(f"v must be finite when 2 alpha <= 1 (got v={v}, alpha={alpha}): tr D diverges")
        v = math.inf
    else:
        v = positive_int(v, "v")
        if v < d:
            raise ValueError(f"v must be >= d (got v={v}, d={d})")
    if steps is not None:
        steps = positive_int(steps, "steps")
    return d, v, steps, positive_int(batch, "batch")


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def stable_sgd_lr(alpha: float, v: float, lr: float | None = None, lr_scale: float = DEFAULT_LR_SCALE) -> float:
    """The step: lr if given, else lr_scale / sum_{j <= v} j^(-2 alpha) (= lr_scale / E tr H)."""
    if lr is not None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        return float(lr)
    if not (isinstance(lr_scale, (int, float)) and math.isfinite(lr_scale) and lr_scale > 0):
        raise ValueError(f"lr_scale must be a finite number > 0, got {lr_scale!r}")
    return lr_scale / trace_d(alpha, v)


def sample_w(v: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """W in R^(v x d) with N(0, 1/d) entries."""
    return rng.standard_normal((v, d)) / math.sqrt(d)


# --- SGD ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SGDRun:
    """Population loss P(theta_r) of `loss.shape[0]` independent SGD runs (same W, own data) at `steps`."""

    steps: np.ndarray
    loss: np.ndarray
    w: np.ndarray
    lr: float
    batch: int

    @property
    def mean(self) -> np.ndarray:
        return self.loss.mean(axis=0)

    @property
    def sem(self) -> np.ndarray:
        """Standard error of `mean` (Monte-Carlo error over the seeds)."""
        return self.loss.std(axis=0, ddof=1) / math.sqrt(self.loss.shape[0])


def simulate(alpha: float, beta: float, d: int, v: int, steps: int, *, batch: int = 1, lr: float | None = None,
             lr_scale: float = DEFAULT_LR_SCALE, seeds: int = 16, seed: int = 0, w: np.ndarray | None = None,
             ) -> SGDRun:
    """One-pass SGD on PLRF, `seeds` runs at once (vectorised), all sharing one W (`w`, or drawn from `seed`).

    Returns the exact population loss P(theta) = 1/2 (W theta - b)^T D (W theta - b) after every step.
    """
    alpha, beta = check_exponents(alpha, beta)
    d, v, steps, batch = check_sizes(alpha, d, v, steps, batch)
    if math.isinf(v):
        raise ValueError("v must be finite to simulate SGD")
    seeds = positive_int(seeds, "seeds")
    rng = np.random.default_rng(seed)
    w = sample_w(v, d, rng) if w is None else _checked_w(w, v, d)
    lr = stable_sgd_lr(alpha, v, lr, lr_scale)
    scales, b = data_scales(alpha, v), data_scales(beta, v)

    def population_loss(theta: np.ndarray) -> np.ndarray:
        residual = theta @ w.T - b
        return 0.5 * (residual**2) @ scales**2

    theta = np.zeros((seeds, d))
    loss = np.empty((seeds, steps + 1))
    loss[:, 0] = population_loss(theta)
    for r in range(steps):
        x = rng.standard_normal((seeds, batch, v)) * scales
        features = x @ w
        error = np.einsum("sbd,sd->sb", features, theta) - x @ b
        theta -= (lr / batch) * np.einsum("sbd,sb->sd", features, error)
        loss[:, r + 1] = population_loss(theta)
    return SGDRun(steps=np.arange(steps + 1), loss=loss, w=w, lr=lr, batch=batch)


def _checked_w(w, v: int, d: int) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    if w.shape != (v, d):
        raise ValueError(f"w must have shape (v, d) = ({v}, {d}), got {w.shape}")
    return w


# --- deterministic equivalent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawTerms:
    """The sum-of-power-laws approximation of the loss, each term separately (see docs/theory.md)."""

    steps: np.ndarray
    F_pp: np.ndarray
    F_ac: np.ndarray
    F_0: np.ndarray
    noise: np.ndarray
    kernel_norm: float

    @property
    def total(self) -> np.ndarray:
        return self.F_pp + self.F_ac + self.F_0 + self.noise

    def dominant(self) -> np.ndarray:
        """Name of the largest term at each step."""
        names = np.array(["F_pp", "F_ac", "F_0", "K_pp"])
        return names[np.argmax(np.stack([self.F_pp, self.F_ac, self.F_0, self.noise]), axis=0)]


@dataclass(frozen=True)
class LossCurve:
    """Expected SGD loss P(r) from the Volterra equation, its forcing F(r), and the power-law terms."""

    steps: np.ndarray
    loss: np.ndarray
    forcing: np.ndarray
    limit: float
    kernel_norm: float
    lr: float
    batch: int
    source: str  # "given W" or "random-matrix limit"
    terms: PowerLawTerms = field(repr=False)


def loss_curve(alpha: float, beta: float, d: int, v, steps: int, *, batch: int = 1, lr: float | None = None,
               lr_scale: float = DEFAULT_LR_SCALE, w: np.ndarray | None = None, rel_step: float | None = None,
               ) -> LossCurve:
    """The deterministic equivalent of the expected SGD loss: P(r) = F(r) + sum_{s<r} K(r-1-s) P(s).

    F and K come from the spectrum of W^T D W for the given `w` (then exact in expectation over the data),
    else from its random-matrix limit (v > d; v may be math.inf when 2 alpha > 1). Every step is reported
    up to 10^4 steps (or with rel_step=0); beyond, a geometric grid of relative spacing `rel_step` (0.02).
    """
    alpha, beta = check_exponents(alpha, beta)
    d, v, steps, batch = check_sizes(alpha, d, v, steps, batch)
    if w is not None:
        if math.isinf(v):
            raise ValueError("v must be finite when w is given")
        modes, source = modes_from_w(alpha, beta, _checked_w(w, v, d)), "given W"
    else:
        modes, source = modes_from_rmt(alpha, beta, d, v), "random-matrix limit"
    lr = stable_sgd_lr(alpha, v, lr, lr_scale)
    volterra.check_stable(modes, lr, batch)
    if rel_step is None:
        rel_step = 0.0 if steps <= EVERY_STEP_UP_TO else 0.02
    if rel_step <= 0 and steps > MAX_EVERY_STEP:
        raise ValueError(f"rel_step must be > 0 beyond {MAX_EVERY_STEP} steps (got {rel_step}, steps={steps})")
    grid = volterra.time_grid(steps, rel_step)
    loss, forcing = volterra.solve(modes, lr, batch, grid)
    norm = volterra.kernel_norm(modes, lr, batch)
    terms = power_law_terms(alpha, beta, d, grid, lr=lr, batch=batch, limit=modes.limit, kernel_norm=norm)
    return LossCurve(steps=grid, loss=loss, forcing=forcing, limit=modes.limit, kernel_norm=norm, lr=lr,
                     batch=batch, source=source, terms=terms)


# --- the sum-of-power-laws approximation ----------------------------------------------------------------


def power_law_terms(alpha: float, beta: float, d: int, steps, *, lr: float, batch: int = 1, limit: float,
                    kernel_norm: float | None = None) -> PowerLawTerms:
    """F_pp, F_ac, F_0 and the SGD-noise term at `steps`, each divided by (1 - ||K||).

    With tau = 2 lr r and the eigenvalues of H taken as j^(-2 alpha), j <= d:
      F_pp  = 1/(4 alpha) tau^(-p) Gamma(p, tau d^(-2 alpha)),   p = (2 alpha + 2 beta - 1) / (2 alpha)
      F_ac  = zeta(2 beta) / (4 alpha d) tau^(-a) Gamma(a, tau d^(-2 alpha)),  a = 1 - 1/(2 alpha) (2 beta > 1)
      F_0   = `limit` (the loss of the best theta)
      K_pp  = lr^2 / (2 alpha B) tau^(-q) Gamma(q, tau d^(-2 alpha)),   q = 2 - 1/(2 alpha)
      noise = K_pp(r) sum_{s<r} (F_pp + F_ac + F_0)(s) / (1 - ||K||)
    Gamma(., x) is the upper incomplete gamma function: for 1 << tau << d^(2 alpha) these are pure power
    laws. Each is capped at its value at r = 0, where the integrals behind them stop being accurate.
    ||K|| defaults to lr sum_{j <= d} j^(-2 alpha) / (2 B).
    """
    alpha, beta = check_exponents(alpha, beta)
    steps = np.asarray(steps, dtype=float)
    j = np.arange(1, d + 1, dtype=float)
    norm = lr * float(np.sum(j ** (-2 * alpha))) / (2 * batch) if kernel_norm is None else kernel_norm
    cutoff = d ** (-2 * alpha)
    p, a, q = (2 * alpha + 2 * beta - 1) / (2 * alpha), 1 - 1 / (2 * alpha), 2 - 1 / (2 * alpha)
    ac_scale = 0.5 * float(zeta(2 * beta)) / d if 2 * beta > 1 else 0.0
    caps = {  # the sums the integrals approximate, at r = 0
        "pp": 0.5 * float(np.sum(j ** (-2 * (alpha + beta)))),
        "ac": ac_scale * float(np.sum(j ** (-2 * alpha))),
        "k": lr**2 / batch * float(np.sum(j ** (-4 * alpha))),
    }

    def power(exponent: float, scale: float, cap: float, r: np.ndarray) -> np.ndarray:
        tau = 2 * lr * r
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            value = scale * tau ** (-exponent) * upper_gamma(exponent, tau * cutoff) / (2 * alpha)
        return np.where(r > 0, np.minimum(value, cap), cap)

    def forcing(r: np.ndarray) -> np.ndarray:
        return power(p, 0.5, caps["pp"], r) + power(a, ac_scale, caps["ac"], r) + limit

    # sum_{s<r} of the forcing, by the trapezoid rule on a fine geometric grid
    fine = np.concatenate([[0.0], np.geomspace(1.0, max(float(steps.max()), 1.0), 4000)])
    values = forcing(fine)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (values[1:] + values[:-1]) * np.diff(fine))])
    noise = power(q, lr**2 / batch, caps["k"], steps) * np.interp(steps, fine, cumulative) / (1 - norm)
    scale = 1 / (1 - norm)
    return PowerLawTerms(steps=steps.astype(int), F_pp=power(p, 0.5, caps["pp"], steps) * scale,
                         F_ac=power(a, ac_scale, caps["ac"], steps) * scale,
                         F_0=np.full(steps.shape, limit * scale), noise=noise * scale, kernel_norm=norm)


def upper_gamma(a: float, x: np.ndarray) -> np.ndarray:
    """Gamma(a, x) = int_x^inf t^(a-1) e^(-t) dt for any real a (x > 0 when a <= 0)."""
    x = np.asarray(x, dtype=float)
    if a > 0:
        return gammaincc(a, x) * gamma(a)
    if a == 0:
        return exp1(x)
    # Gamma(a, x) = (Gamma(a + 1, x) - x^a e^(-x)) / a
    return (upper_gamma(a + 1, x) - x**a * np.exp(-x)) / a
