"""SGD on PLRF against its Volterra deterministic equivalent, the random-matrix limit, the power-law terms."""
import math

import numpy as np
import pytest

from timelaw.theory import loss_curve, power_law_terms, simulate


@pytest.mark.parametrize("alpha, beta, batch", [(1.0, 1.0, 1), (0.4, 1.0, 4), (0.75, 0.25, 2)])
def test_mean_sgd_loss_matches_volterra_with_same_w_at_every_step(alpha, beta, batch):
    d, v, steps = 12, 48, 300
    run = simulate(alpha, beta, d, v, steps, batch=batch, seeds=400, seed=1)
    curve = loss_curve(alpha, beta, d, v, steps, batch=batch, w=run.w)
    assert np.array_equal(curve.steps, run.steps)
    assert curve.loss[0] == pytest.approx(run.mean[0], rel=1e-12)  # theta = 0 for every seed
    z = (run.mean[1:] - curve.loss[1:]) / run.sem[1:]
    assert np.max(np.abs(z)) < 4.5
    assert abs(np.mean(z)) < 1.5
    # the comparison can tell: without the SGD-noise kernel (forcing alone) it fails by far
    assert np.max((run.mean[1:] - curve.forcing[1:]) / run.sem[1:]) > 10


def test_volterra_solver_matches_direct_convolution():
    """The blocked solver against P(r) = F(r) + sum_{s<r} K(r-1-s) P(s) summed term by term."""
    alpha, beta, d, v, steps, batch = 0.8, 0.9, 10, 30, 200, 3
    rng = np.random.default_rng(5)
    w = rng.standard_normal((v, d)) / math.sqrt(d)
    lr = 0.3
    j = np.arange(1, v + 1)
    a = j[:, None] ** -alpha * w
    c = j ** (-alpha - beta)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    lam = s**2
    rho = (1 - lr * lam) ** 2 + lr**2 * lam**2 / batch
    limit = 0.5 * np.sum((c - u @ (u.T @ c)) ** 2)
    r = np.arange(steps + 1)[:, None]
    forcing = limit + 0.5 * (rho**r) @ (u.T @ c) ** 2
    kernel = (lr**2 / batch) * (rho**r) @ lam**2
    p = np.empty(steps + 1)
    for t in range(steps + 1):
        p[t] = forcing[t] + np.dot(kernel[:t][::-1], p[:t])
    every = loss_curve(alpha, beta, d, v, steps, batch=batch, lr=lr, w=w)
    np.testing.assert_allclose(every.loss, p, rtol=1e-10)
    blocked = loss_curve(alpha, beta, d, v, steps, batch=batch, lr=lr, w=w, rel_step=0.05)
    np.testing.assert_allclose(blocked.loss, p[blocked.steps], rtol=2e-3)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.4, 1.0), (0.7, 0.3)])
def test_random_matrix_limit_matches_average_over_w(alpha, beta):
    d, v, steps, samples = 128, 512, 10**5, 16
    limit_curve = loss_curve(alpha, beta, d, v, steps)
    rng = np.random.default_rng(7)
    curves = [loss_curve(alpha, beta, d, v, steps, w=rng.standard_normal((v, d)) / math.sqrt(d))
              for _ in range(samples)]
    assert all(np.array_equal(c.steps, limit_curve.steps) for c in curves)
    mean = np.mean([c.loss for c in curves], axis=0)
    sem = np.std([c.loss for c in curves], axis=0, ddof=1) / math.sqrt(samples)
    assert np.all(np.abs(limit_curve.loss - mean) < 3 * sem + 0.03 * mean)


def test_random_matrix_limit_level_is_the_ridgeless_limit():
    """limit = 1/2 sum_j c_j^2 / (1 + kappa D_j) with sum_j kappa D_j / (1 + kappa D_j) = d, solved here."""
    from scipy.optimize import brentq

    alpha, beta, d, v = 0.9, 0.6, 100, 400
    dj = np.arange(1, v + 1) ** (-2 * alpha)
    c2 = np.arange(1, v + 1) ** (-2 * (alpha + beta))
    kappa = brentq(lambda k: np.sum(k * dj / (1 + k * dj)) - d, 1e-6, 1e12, xtol=1e-14, rtol=1e-14)
    expected = 0.5 * np.sum(c2 / (1 + kappa * dj))
    curve = loss_curve(alpha, beta, d, v, 10)
    assert curve.limit == pytest.approx(expected, rel=1e-6)
    assert curve.loss[0] == pytest.approx(0.5 * np.sum(c2), rel=1e-3)  # the initial loss, from the spectrum


@pytest.mark.parametrize("alpha, beta", [(1.0, 2.0), (0.7, 0.7), (1.25, 0.75), (0.75, 0.25)])
def test_power_law_terms_track_the_volterra_solution(alpha, beta):
    curve = loss_curve(alpha, beta, 1024, 4096, 10**7)
    later = curve.steps >= 10
    ratio = curve.terms.total[later] / curve.loss[later]
    assert np.all((ratio > 0.6) & (ratio < 1.6))
    terms = curve.terms  # each term separately, all divided by 1 - ||K||
    assert np.allclose(terms.F_0, curve.limit / (1 - curve.kernel_norm))
    assert np.all(np.diff(terms.F_pp[later]) <= 0) and terms.F_pp[later][0] > terms.F_pp[later][-1]


def test_dominant_term_changes_from_forcing_to_limit_level():
    terms = loss_curve(1.0, 2.0, 1024, 4096, 10**8).terms
    dominant = terms.dominant()
    assert dominant[np.searchsorted(terms.steps, 1000)] == "F_ac"  # phase III: the bulk forcing lasts ...
    assert dominant[-1] == "F_0"  # ... until the limit level d^(-2 alpha) is reached


def test_power_law_terms_decay_with_their_exponents():
    alpha, beta, d, lr = 1.0, 2.0, 10**6, 0.3
    steps = np.array([10**3, 10**4])
    t = power_law_terms(alpha, beta, d, steps, lr=lr, limit=0.0)
    slope = lambda y: math.log(y[1] / y[0]) / math.log(10)  # noqa: E731
    assert slope(t.F_pp) == pytest.approx(-(2 * alpha + 2 * beta - 1) / (2 * alpha), abs=1e-3)
    assert slope(t.F_ac) == pytest.approx(-(1 - 1 / (2 * alpha)), abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(d=0), "d"),
        (dict(d=2.5), "d"),
        (dict(v=8), "v"),
        (dict(steps=0), "steps"),
        (dict(batch=0), "batch"),
        (dict(lr=-1.0), "lr"),
        (dict(alpha=0.2, beta=0.2), "alpha"),
    ],
)
def test_invalid_sizes_are_rejected(kwargs, word):
    args = dict(alpha=1.0, beta=1.0, d=16, v=64, steps=10) | kwargs
    for fn in (simulate, loss_curve):
        with pytest.raises(ValueError, match=word):
            fn(**args)


def test_infinite_v_only_when_two_alpha_above_one():
    with pytest.raises(ValueError, match="v must be finite"):
        loss_curve(0.4, 1.0, 16, math.inf, 10)
    assert loss_curve(1.0, 1.0, 16, math.inf, 10).loss[-1] > 0
    with pytest.raises(ValueError, match="v must be > d"):
        loss_curve(1.0, 1.0, 16, 16, 10)  # the random-matrix limit needs v > d


def test_unstable_step_is_refused():
    with pytest.raises(ValueError, match="lr"):
        loss_curve(1.0, 1.0, 16, 64, 10, lr=5.0)
