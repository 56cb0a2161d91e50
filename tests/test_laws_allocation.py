"""Allocation: compute-optimal N*(C), D*(C), and the optimal N for a given amount of data.

Expected values come from closed forms in the papers (Hoffmann et al. 2022 eq. 4; datablations' D_to_N),
from algebra on Kaplan et al.'s eq. 1.5, or from brute-force search -- never from the code under test.
"""
from __future__ import annotations


import numpy as np
import pytest

from timelaw.laws import (
    compute_optimal,
    compute_optimal_exponents,
    make_law,
    optimal_params_for_tokens,
    preset,
)

FLOPS = np.geomspace(1e18, 1e25, 8)


def chinchilla_g(params: dict[str, float]) -> float:
    """G of Hoffmann et al. eq. 4: N_opt(C) = G (C/6)^(beta/(alpha+beta))."""
    alpha, beta = params["alpha"], params["beta"]
    return (alpha * params["A"] / (beta * params["B"])) ** (1 / (alpha + beta))


@pytest.mark.parametrize("name", ["epoch2024", "hoffmann2022"])
def test_chinchilla_compute_optimal_matches_closed_form(name):
    law = preset(name)
    p = law.params_
    expected_n = chinchilla_g(p) * (FLOPS / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    allocation = compute_optimal(law, FLOPS)
    np.testing.assert_allclose(allocation.n_params, expected_n, rtol=1e-6)
    np.testing.assert_allclose(6 * allocation.n_params * allocation.tokens, FLOPS, rtol=1e-12)
    np.testing.assert_allclose(allocation.loss, law.predict(allocation.n_params, allocation.tokens))


def test_chinchilla_optimal_params_for_tokens_matches_datablations_d_to_n():
    law = preset("epoch2024")
    p = law.params_
    tokens = np.geomspace(1e9, 1e13, 6)
    g = chinchilla_g(p)
    expected = (tokens * g) ** (p["beta"] / p["alpha"]) * g  # datablations README, D_to_N
    np.testing.assert_allclose(optimal_params_for_tokens(law, tokens), expected, rtol=1e-6)


def test_kaplan_compute_optimal_exponent():
    # Minimising (N_c/N)^(aN/aD) + 6 D_c N / C over N gives N* ~ C^(aD / (aN + aD)).
    p = preset("kaplan2020").params_
    n_exponent, d_exponent = compute_optimal_exponents(preset("kaplan2020"))
    assert n_exponent == pytest.approx(p["alpha_D"] / (p["alpha_N"] + p["alpha_D"]), abs=1e-6)
    assert d_exponent == pytest.approx(p["alpha_N"] / (p["alpha_N"] + p["alpha_D"]), abs=1e-6)


def test_data_constrained_allocation_matches_brute_force():
    law = preset("muennighoff2023")
    unique = 25e9
    for flops in (1e21, 1e23, 1e24):  # from ample unique data to ~40 epochs of it
        log_n = np.linspace(np.log(1e6), np.log(flops / 6 / 1e6), 200_001)
        n_grid = np.exp(log_n)
        losses = law.predict(n_grid, flops / (6 * n_grid), unique_tokens=unique)
        best = n_grid[np.argmin(losses)]
        found = compute_optimal(law, flops, unique_tokens=unique)
        assert found.n_params == pytest.approx(best, rel=2e-4)
        assert found.loss <= losses.min() + 1e-12


def test_data_constrained_with_ample_unique_data_allocates_like_chinchilla():
    law = preset("muennighoff2023")
    same = make_law("chinchilla", {k: law.params_[k] for k in ("E", "A", "B", "alpha", "beta")})
    constrained = compute_optimal(law, FLOPS, unique_tokens=1e16)
    np.testing.assert_allclose(constrained.n_params, compute_optimal(same, FLOPS).n_params, rtol=1e-5)


def test_allocation_broadcasts_budgets_and_unique_tokens():
    law = preset("muennighoff2023")
    flops = np.geomspace(1e20, 1e24, 6).reshape(2, 3)
    unique = np.array([1e9, 1e10, 1e11])
    allocation = compute_optimal(law, flops, unique_tokens=unique)
    assert allocation.n_params.shape == allocation.tokens.shape == allocation.loss.shape == (2, 3)
    assert optimal_params_for_tokens(law, np.array([[1e10], [1e11]]), unique_tokens=unique).shape == (2, 3)


def test_compute_only_has_no_optimal_split():
    law = make_law("compute_only", {"E": 1.7, "A": 2000.0, "gamma": 0.15})
    n_params = np.geomspace(1e7, 1e11, 5)
    np.testing.assert_allclose(law.predict(n_params, 1e21 / (6 * n_params)), law.predict(1e9, 1e21 / 6e9))
    with pytest.raises(ValueError, match="no compute-optimal"):
        compute_optimal(law, 1e21)


def test_budget_too_small():
    with pytest.raises(ValueError, match="flops must be > 6"):
        compute_optimal(preset("epoch2024"), [1e20, 1.0])


def test_predict_on_large_arrays_equals_one_point_at_a_time():
    law = preset("muennighoff2023")
    n_params, tokens = np.geomspace(1e7, 1e11, 200_000), np.geomspace(1e9, 1e13, 200_000)
    loss = law.predict(n_params, tokens, unique_tokens=1e11)
    assert loss.shape == (200_000,) and np.all(np.isfinite(loss))
    for i in (0, 77_777, 199_999):
        assert loss[i] == pytest.approx(float(law.predict(n_params[i], tokens[i], unique_tokens=1e11)), rel=1e-12)
