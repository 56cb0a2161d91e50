"""The Volterra equation for the expected loss of one-pass SGD, solved on a geometric time grid.

For SGD with batch mean over B samples and step gamma, in the eigenbasis of H the second moments of
theta - theta* evolve exactly (Gaussian data) as

    s_k(r + 1) = rho_k s_k(r) + (2 gamma^2 lam_k / B) P(r),   rho_k = (1 - gamma lam_k)^2 + gamma^2 lam_k^2 / B,

with P(r) = limit + 1/2 sum_k lam_k s_k(r). Unrolled, P(r) = F(r) + sum_{s<r} K(r - 1 - s) P(s) with
F(r) = limit + 1/2 sum_k target_k rho_k^r and K(r) = (gamma^2 / B) sum_k count_k lam_k^2 rho_k^r.

`solve` keeps S_k(r) = sum_{s<r} rho_k^(r-1-s) P(s) and advances it over blocks of n steps exactly for a
P that is linear in s inside the block (closed-form geometric sums), so the recursion costs one step per
block. Blocks are single steps early on (the recursion is then exact) and grow as a fraction `rel_step`
of r (rounded down to a power of two), so 10^9 iterations take about a thousand blocks.
"""
from __future__ import annotations

import math

import numpy as np

from timelaw.theory.spectrum import Modes


def rho_and_gap(lam: np.ndarray, lr: float, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """rho = (1 - lr lam)^2 + lr^2 lam^2 / B and 1 - rho, the latter without cancellation for small lam."""
    gap = lr * lam * (2.0 - lr * lam * (1.0 + 1.0 / batch))
    return 1.0 - gap, gap


def kernel_norm(modes: Modes, lr: float, batch: int) -> float:
    """||K|| = sum_r K(r) = (gamma^2 / B) sum_k count_k lam_k^2 / (1 - rho_k); SGD is stable iff < 1."""
    _, gap = rho_and_gap(modes.lam, lr, batch)
    return float(lr**2 / batch * np.sum(modes.count * modes.lam**2 / gap))


def check_stable(modes: Modes, lr: float, batch: int) -> None:
    _, gap = rho_and_gap(modes.lam, lr, batch)
    if np.any(gap[modes.count > 0] <= 0) or kernel_norm(modes, lr, batch) >= 1:
        raise ValueError(
            f"lr={lr:g} is above the stability limit of SGD for this spectrum (||K|| = "
            f"{kernel_norm(modes, lr, batch):.3g} must be < 1); lower lr or lr_scale"
        )


def time_grid(steps: int, rel_step: float) -> np.ndarray:
    """0, 1, 2, ... then blocks of the largest power of two <= rel_step * r, ending exactly at `steps`.

    Powers of two make block lengths repeat, so `solve` computes each block's weights once.
    """
    if rel_step <= 0:
        return np.arange(steps + 1)
    grid = [0]
    r = 0
    while r < steps:
        n = 1 << max(0, int(math.floor(math.log2(max(1.0, rel_step * r)))))
        r = min(steps, r + n)
        grid.append(r)
    return np.asarray(grid)


def _block_weights(q: np.ndarray, gap: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q^n, and the weights (w0, w1) with sum_{k<n} q^(n-1-k) P(t + k) = w0 P(t) + w1 P(t + n) for P linear.

    With x = -n log q: sum_{j<n} q^j = (1 - q^n) / (1 - q); sum_{j<n} (n-1-j) q^j = (n - 1 - n q + q^n) / (1-q)^2,
    the latter by its Taylor series in log q where the closed form cancels (n |log q| small).
    """
    log_q = np.log1p(-gap)
    qn = np.exp(n * log_q)
    safe_gap = np.where(gap > 0, gap, 1.0)
    geo = np.where(gap > 0, -np.expm1(n * log_q) / safe_gap, float(n))
    y = -log_q
    series = n * (n - 1) / 2 - y * n * (n - 1) * (n - 2) / 6 + y**2 * n * (n - 1) ** 2 * (n - 2) / 24
    closed = (n * gap + np.expm1(n * log_q)) / safe_gap**2
    ramp = np.where(n * np.abs(y) < 1e-3, series, closed)
    w1 = ramp / n
    return qn, geo - w1, w1


def solve(modes: Modes, lr: float, batch: int, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(r) and F(r) on the integer time grid `grid` (increasing, starting at 0)."""
    q, gap = rho_and_gap(modes.lam, lr, batch)
    kernel = lr**2 / batch * modes.count * modes.lam**2
    target = 0.5 * modes.target
    decay = np.ones_like(q)  # q^r, for the forcing
    state = np.zeros_like(q)  # S_k(r)
    loss = np.empty(len(grid))
    forcing = np.empty(len(grid))
    forcing[0] = loss[0] = modes.limit + target.sum()
    weights = {}
    for i in range(1, len(grid)):
        n = int(grid[i] - grid[i - 1])
        if n not in weights:
            weights[n] = _block_weights(q, gap, n)
        qn, w0, w1 = weights[n]
        decay *= qn
        forcing[i] = modes.limit + target @ decay
        known = qn * state + w0 * loss[i - 1]
        # P(t + n) = F(t + n) + sum_k kernel_k (known_k + w1_k P(t + n)): one linear equation.
        loss[i] = (forcing[i] + kernel @ known) / (1.0 - kernel @ w1)
        state = known + w1 * loss[i]
    return loss, forcing
