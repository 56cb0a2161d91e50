"""Spectral data of PLRF: the modes that the Volterra equation for the expected SGD loss runs on.

With A = D^(1/2) W (D = diag(j^(-2 alpha))), c = D^(1/2) b, the features' covariance is H = W^T D W = A^T A.
For an eigenvalue lam_k of H with left singular vector u_k of A, the expected loss from theta = 0 is

    F(r) = limit + 1/2 sum_k target_k rho(lam_k)^r,   target_k = <u_k, c>^2,
    limit = 1/2 |c - projection of c on range(A)|^2    (the loss of the best theta: F_0(d))

and the kernel K(r) = (gamma^2 / B) sum_k count_k lam_k^2 rho(lam_k)^r. A `Modes` holds (lam, count,
target, limit): exactly, from a given W (count = 1 per eigenvalue), or as a quadrature of the
random-matrix (deterministic-equivalent) limit when W is not given.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import zeta

EPS = 0.02  # relative smoothing of the Stieltjes inversion, z = x (1 + i eps); the log-grid step is eps / 2
MIN_EPS = 0.005  # the finest smoothing tried before giving up on a (huge) d
NEGATIVE_COUNT_TOLERANCE = 0.01  # eigenvalues per node: below this the quadrature is refined
EDGE_MARGIN = 10  # the grid reaches EDGE_MARGIN * eps (in log x) beyond the spectrum's edges
FAR_FIELD = 10  # eigenvalues more than FAR_FIELD * eps below x (in log) reach it only through tails
FINE_UNTIL = 8  # indices beyond FINE_UNTIL * d sit below the spectrum: their D_j resonate with nothing
COARSE_RATIO = 1.5  # bin ratio for those indices
INDEX_CUTOFF = 10_000  # an infinite v is summed to INDEX_CUTOFF * d, the rest to first order in D_j / z
SERIAL_BLAS_BELOW = 5e8  # v d^2 below which modes_from_w factorises on one thread


@dataclass(frozen=True)
class Modes:
    """Eigenvalues `lam` of H, how many eigenvalues each node stands for (`count`), the target mass on
    each (`target`, so that 1/2 sum target = the learnable part of the initial loss) and the loss of the
    best theta (`limit`)."""

    lam: np.ndarray
    count: np.ndarray
    target: np.ndarray
    limit: float


def data_scales(alpha: float, v: int) -> np.ndarray:
    """j^(-alpha), j = 1..v: the standard deviations of the data coordinates."""
    return np.arange(1, v + 1, dtype=float) ** (-alpha)


def trace_d(alpha: float, v: float) -> float:
    """sum_{j <= v} j^(-2 alpha) = tr D (v may be infinite when 2 alpha > 1)."""
    if math.isinf(v):
        return float(zeta(2 * alpha))
    return power_sum(2 * alpha, 1, int(v) + 1)


def power_sum(s: float, lo: int, hi: float) -> float:
    """sum_{j = lo}^{hi - 1} j^(-s); exact up to a few thousand terms, Euler-Maclaurin beyond."""
    return float(_power_sums(s, np.array([lo]), np.array([hi], dtype=float))[0])


def _power_sums(s: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Vectorised sum_{j=lo}^{hi-1} j^(-s) over bins [lo, hi) of integers (hi may be inf)."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    out = np.zeros(lo.shape)
    head = 64.0
    # Exact part: j < head, so Euler-Maclaurin below is only used where it is accurate to ~1e-12.
    j = np.arange(1, int(head), dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(j ** (-s))])
    lo_h, hi_h = np.minimum(lo, head), np.minimum(hi, head)
    out += cum[(hi_h - 1).astype(int)] - cum[(lo_h - 1).astype(int)]
    lo_t, hi_t = np.maximum(lo, head), np.maximum(hi, head)
    out += np.where(hi_t > lo_t, _em_tail(s, lo_t) - _em_tail(s, hi_t), 0.0)
    return out


def _em_tail(s: float, a: np.ndarray) -> np.ndarray:
    """Euler-Maclaurin for sum_{j >= a} j^(-s): -a^(1-s)/(1-s) + a^(-s)/2 + s a^(-s-1)/12
    - s(s+1)(s+2) a^(-s-3)/720 (for s <= 1 the sum diverges; the formula is then right up to a constant
    that cancels in the differences taken by _power_sums)."""
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if abs(s - 1.0) < 1e-12:
            integral = -np.log(a)
        else:
            integral = -(a ** (1 - s)) / (1 - s)
        value = integral + 0.5 * a ** (-s) + s * a ** (-s - 1) / 12 - s * (s + 1) * (s + 2) * a ** (-s - 3) / 720
    if s > 1:
        return np.where(np.isinf(a), 0.0, value)
    return value


# --- exact modes from a given W -----------------------------------------------------------------------


def modes_from_w(alpha: float, beta: float, w: np.ndarray) -> Modes:
    """Modes of H = W^T D W for a given W (v x d): exact for the expected loss of SGD on Gaussian data."""
    v, d = w.shape
    scales = data_scales(alpha, v)
    a = scales[:, None] * w
    c = scales * data_scales(beta, v)
    with _serial_blas(v * d * d < SERIAL_BLAS_BELOW):
        u, sing, _ = np.linalg.svd(a, full_matrices=False)
    proj = u.T @ c
    residual = c - u @ proj
    return Modes(lam=sing**2, count=np.ones_like(sing), target=proj**2, limit=0.5 * float(residual @ residual))


@contextlib.contextmanager
def _serial_blas(small: bool):
    """Run a small factorisation on one BLAS thread: on a busy machine extra threads only spin and
    contend (a 512 x 128 SVD was measured 160x slower with two threads than with one)."""
    if not small:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


# --- the random-matrix limit --------------------------------------------------------------------------


@dataclass(frozen=True)
class _IndexQuadrature:
    """sum_{j=1}^{v} g(D_j) ~ sum_k n_k g(D_k) + first-order tail; D_k is each bin's mean of j^(-2 alpha)."""

    d_mean: np.ndarray
    n: np.ndarray
    c2: np.ndarray  # sum over the bin of c_j^2 = j^(-2 alpha - 2 beta)
    tail_d1: float  # sum over j beyond the bins of D_j, D_j^2, c_j^2 (infinite v only)
    tail_d2: float
    tail_c2: float


def _index_quadrature(alpha: float, beta: float, d: int, v: float, eps: float) -> _IndexQuadrature:
    # Bins so narrow that D_j varies by < eps/4 inside one where D_j can resonate with the spectrum
    # (j up to FINE_UNTIL * d); coarse bins below the spectrum, where g(D_j) ~ -D_j / z is smooth.
    fine_ratio = 1 + eps / (8 * alpha)
    first = max(2, int(math.ceil(1 / (fine_ratio - 1))))
    last = float(min(v, INDEX_CUTOFF * d))  # float: indices may pass 2^63 for huge d
    fine_end = min(last, float(FINE_UNTIL * d))
    edges = [np.arange(1, min(first, fine_end) + 1, dtype=float)]
    if fine_end > first:
        edges.append(np.geomspace(first, fine_end, int(math.log(fine_end / first) / math.log(fine_ratio)) + 2))
    if last > fine_end:
        edges.append(np.geomspace(fine_end, last, int(math.log(last / fine_end) / math.log(COARSE_RATIO)) + 2))
    edges = np.unique(np.round(np.concatenate(edges)))
    edges[-1] = last + 1  # bins are [lo, hi): the last one includes index `last`
    lo, hi = edges[:-1], edges[1:]
    n = hi - lo
    d_mean = _power_sums(2 * alpha, lo, hi) / n
    c2 = _power_sums(2 * (alpha + beta), lo, hi)
    tail = (0.0, 0.0, 0.0)
    if math.isinf(v):
        start = np.array([last + 1.0])
        tail = tuple(float(_power_sums(s, start, np.array([np.inf]))[0])
                     for s in (2 * alpha, 4 * alpha, 2 * (alpha + beta)))
    return _IndexQuadrature(d_mean, n, c2, *tail)


def _solve_m(q: _IndexQuadrature, d: int, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """m(z) solving m (1 + S(m, z)) = 1, S = (1/d) sum_j D_j / (D_j m - z), by Newton's method, and
    G_c(z) = sum_j c_j^2 / (D_j m - z). z has shape (points, rays); all rays advance together.

    m is the deterministic equivalent of the resolvent of M = D^(1/2) W W^T D^(1/2):
    (M - z)^(-1) ~ diag(1 / (D_j m - z)). z runs from large |z| (where m ~ 1) down to the spectrum, each
    point starting from its neighbour's solution, so a few Newton steps suffice.
    """
    w1 = q.n * q.d_mean / d
    w2 = q.n * q.d_mean**2 / d
    t1, t2 = q.tail_d1 / d, q.tail_d2 / d
    m = np.empty(z.shape, dtype=complex)
    g_c = np.empty(z.shape, dtype=complex)
    mi = np.ones(z.shape[1], dtype=complex)
    for i, zi in enumerate(z):
        for _ in range(60):
            inv = 1.0 / (mi[:, None] * q.d_mean - zi[:, None])
            s = inv @ w1 - (t1 + mi * t2 / zi) / zi  # beyond the bins, 1/(D m - z) to first order in D
            ds = -((inv * inv) @ w2) - t2 / zi**2
            step = (mi * (1.0 + s) - 1.0) / (1.0 + s + mi * ds)
            mi = mi - step
            if np.all(np.abs(step) < 1e-12 * np.abs(mi)):
                break
        m[i] = mi
        g_c[i] = inv @ q.c2 - q.tail_c2 / zi
    return m, g_c


def _spectrum_edges(q: _IndexQuadrature, d: int) -> tuple[float, float]:
    """The lowest and highest points of the limiting spectrum of H (v > d).

    Off the spectrum, g = (1/d) tr (H - x)^(-1) is real and x(g) = -1/g + (1/d) sum_j D_j / (1 + g D_j)
    (Silverstein's equation; it is m(z) = -z g in `_solve_m`). The top edge is the minimum of x(g) on
    (-1/D_1, 0), the bottom edge the maximum on (0, inf): where x'(g) = 1/g^2 - (1/d) sum D_j^2 / (1 + g D_j)^2
    changes sign.
    """
    def slope(g: float) -> float:
        return 1 / g**2 - (float(q.n @ (q.d_mean**2 / (1 + g * q.d_mean) ** 2)) + q.tail_d2) / d

    def x_of(g: float) -> float:
        return -1 / g + (float(q.n @ (q.d_mean / (1 + g * q.d_mean))) + q.tail_d1) / d

    top_scale = 1 / q.d_mean[0]
    g_top = -math.exp(brentq(lambda s: slope(-math.exp(s)), math.log(top_scale) - 60, math.log(top_scale) - 1e-12))
    g_low = math.exp(brentq(lambda s: slope(math.exp(s)), math.log(top_scale) - 60, 200.0))
    return x_of(g_low), x_of(g_top)


def _solve_kappa(q: _IndexQuadrature, d: int) -> float:
    """kappa with sum_j kappa D_j / (1 + kappa D_j) = d: m(z) ~ -kappa z as z -> 0 (needs v > d)."""
    def excess(log_kappa: float) -> float:
        k = math.exp(log_kappa)
        return float(q.n @ (k * q.d_mean / (1 + k * q.d_mean))) + k * q.tail_d1 - d
    return math.exp(brentq(excess, -50.0, 200.0, xtol=1e-14, rtol=1e-13))


def modes_from_rmt(alpha: float, beta: float, d: int, v: float, eps: float = EPS) -> Modes:
    """Modes of the random-matrix (deterministic-equivalent) limit of H = W^T D W, W with N(0, 1/d) entries.

    A measure mu with Stieltjes transform G(z) = int mu(dl) / (l - z) is read off along the ray
    z = x (1 + i eps) above the real axis: Im[(1 + i eps) G(z)] / pi is the derivative in x of its
    smoothed distribution function (a point mass at l becomes eps l / (pi ((l - x)^2 + eps^2 x^2))). The
    combination 2 * (eps) - (2 eps) cancels the smoothing to O(eps^3) in both tails and keeps masses,
    so power-law tails of the spectrum survive; the O(eps^3) tails of far-away eigenvalues are then
    subtracted (`_without_far_tails`). For H: G(z) = -d m(z) / z; for the target:
    G_c(z) = sum_j c_j^2 / (D_j m(z) - z) (its atom at 0, the limit level, contributes nothing on the ray
    and is computed exactly: limit = 1/2 sum_j c_j^2 / (1 + kappa D_j)).

    If the counts come out negative beyond rounding (huge d with 2 alpha < 1, where the bulk outweighs
    the top of the spectrum by d^(1 - 2 alpha)), eps is halved, down to MIN_EPS.
    """
    if not v > d:
        raise ValueError(f"v must be > d for the random-matrix limit (got v={v}, d={d})")
    while True:
        modes = _rmt_modes(alpha, beta, d, v, eps)
        if modes.count.min() >= -NEGATIVE_COUNT_TOLERANCE:
            return modes
        if eps / 2 < MIN_EPS:
            raise ValueError(f"d={d} is too large for the random-matrix quadrature at alpha={alpha}: the bulk "
                             f"of the spectrum outweighs its top beyond double precision")
        eps /= 2


def _rmt_modes(alpha: float, beta: float, d: int, v: float, eps: float) -> Modes:
    q = _index_quadrature(alpha, beta, d, v, eps)
    kappa = _solve_kappa(q, d)
    low, high = _spectrum_edges(q, d)
    step = eps / 2  # trapezoid error ~ exp(-2 pi eps / step) on integrands analytic within eps of the path
    margin = EDGE_MARGIN * eps  # the smoothed measure beyond the edges holds O(eps^3) of the mass
    x = np.exp(np.arange(math.log(high) + margin, math.log(low) - margin, -step))
    tilt = 1 + 1j * np.array([eps, 2 * eps])
    z = x[:, None] * tilt
    m, g_c = _solve_m(q, d, z)
    richardson = np.array([2.0, -1.0])
    scale = x * step / math.pi
    count = (np.imag(tilt * (-d * m / z)) @ richardson) * scale
    target = (np.imag(tilt * g_c) @ richardson) * scale
    count = _without_far_tails(x, step, eps, count)
    count *= d / count.sum()  # the far tails removed held O(eps^3) of every eigenvalue's mass
    limit = 0.5 * (float(q.c2 @ (1 / (1 + kappa * q.d_mean))) + q.tail_c2)
    order = np.argsort(x)
    return Modes(lam=x[order], count=count[order], target=target[order], limit=limit)


def _without_far_tails(x: np.ndarray, step: float, eps: float, count: np.ndarray) -> np.ndarray:
    """Subtract from each node the smoothing tails of the eigenvalues far below it.

    The smoothing leaves an eigenvalue l a tail ~ 6 eps^3 l / x^2 at x >> l. With 2 alpha < 1 the bulk
    holds tr H ~ d^(1 - 2 alpha), and its tails would outweigh the top of the spectrum at large d. Far
    below (more than FAR_FIELD * eps in log x) the kernel is smooth, so the smoothed counts themselves
    (wrong only by O(eps^3)) give those tails to high accuracy.
    """
    lam, xx = x[None, :], x[:, None]
    gap2 = (lam - xx) ** 2
    kernel = 2 * eps * lam / (gap2 + (eps * xx) ** 2) - 2 * eps * lam / (gap2 + (2 * eps * xx) ** 2)
    far = lam < xx * math.exp(-FAR_FIELD * eps)
    return count - (np.where(far, kernel, 0.0) * (xx * step / math.pi)) @ count
