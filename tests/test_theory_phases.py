"""Phase classification of PLRF, its exponents, their continuity, and input validation.

Expected exponents are evaluated by hand from the phase table in docs/theory.md.
"""
import math

import pytest

from timelaw.theory import PHASE_NAMES, phase

ALPHA_IV = 1 - 1 / math.sqrt(2)

# (alpha, beta): (phase, xi, eta), worked out by hand
POINTS = {
    (1.0, 0.3): ("Ia", 1 / 3, 1.6 / 3),
    (0.4, 0.3): ("Ib", 0.5, 0.2),
    (0.2, 0.45): ("Ib", 0.5, 0.15),  # alpha < 1/4: Ib as conjectured in the paper
    (0.2, 1.0): ("Ic", 1.4 / 2.4, 0.4 * 1.4 / 2.4),
    (1.25, 0.75): ("II", 0.375, 0.75),
    (1.0, 2.0): ("III", 0.5, 0.75),
    (0.7, 0.7): ("III", 0.5, 1 - 1 / 2.8),
    (0.4, 1.0): ("IVa", 0.5, 0.4),
    (0.27, 1.0): ("IVb", 0.73 / 1.19, 0.46 * 1.54 / 2.38),
}


@pytest.mark.parametrize("point", POINTS)
def test_phase_and_exponents_at_points_in_each_region(point):
    name, xi, eta = POINTS[point]
    result = phase(*point)
    assert result.name == name
    assert result.xi == pytest.approx(xi, abs=1e-12)
    assert result.eta == pytest.approx(eta, abs=1e-12)
    assert len(result.terms) == 2 and all(t in ("F_pp", "F_ac", "F_0", "K_pp") for t in result.terms)


def test_every_phase_is_reached():
    assert {v[0] for v in POINTS.values()} == set(PHASE_NAMES)


def test_balancing_terms_follow_the_table():
    assert phase(1.0, 0.3).terms == ("F_pp", "F_0")
    assert phase(1.25, 0.75).terms == ("F_pp", "F_ac")
    assert phase(1.0, 2.0).terms == ("K_pp", "F_ac")
    assert phase(0.4, 1.0).terms == ("K_pp", "F_0")
    assert phase(0.27, 1.0).terms == ("F_pp", "K_pp")
    assert phase(0.2, 1.0).terms == ("F_pp", "F_0")


@pytest.mark.parametrize(
    "point, name",
    [((0.5, 0.3), "Ia"), ((0.7, 0.5), "II"), ((0.7, 0.7), "III"), ((0.5, 1.0), "III"), ((0.25, 1.0), "Ic"),
     ((ALPHA_IV, 1.0), "IVa"), ((0.3, 0.5), "IVa"), ((0.1, 0.5), "Ic")],
)
def test_points_on_boundaries_belong_to_the_region_that_includes_them(point, name):
    assert phase(*point).name == name


# Boundaries where xi and eta are continuous: (point on the boundary, direction crossing it).
CONTINUOUS = [
    ((0.7, 0.7), (1, -1)),  # II / III on alpha = beta
    ((1.2, 1.2), (1, -1)),
    ((0.8, 0.5), (0, 1)),  # Ia / II on 2 beta = 1
    ((1.5, 0.5), (0, 1)),
    ((0.5, 0.2), (1, 0)),  # Ib / Ia on 2 alpha = 1
    ((0.5, 0.4), (1, 0)),
    ((0.5, 0.8), (1, 0)),  # IVa / III on 2 alpha = 1
    ((0.5, 2.0), (1, 0)),
    ((0.4, 0.5), (0, 1)),  # Ib / IVa on 2 beta = 1
    ((0.27, 0.5), (0, 1)),  # Ib / IVb
    ((0.2, 0.5), (0, 1)),  # Ib / Ic
    ((0.25, 0.8), (1, 0)),  # Ic / IVb on alpha = 1/4
    ((0.25, 2.0), (1, 0)),
]


@pytest.mark.parametrize("point, direction", CONTINUOUS)
def test_exponents_continuous_across_boundaries(point, direction):
    h = 1e-7
    below = phase(point[0] - h * direction[0], point[1] - h * direction[1])
    above = phase(point[0] + h * direction[0], point[1] + h * direction[1])
    assert below.name != above.name
    assert above.xi == pytest.approx(below.xi, abs=1e-5)
    assert above.eta == pytest.approx(below.eta, abs=1e-5)


@pytest.mark.parametrize("beta", [0.8, 1.0, 2.0])
def test_iva_ivb_boundary_keeps_eta_but_xi_jumps(beta):
    h = 1e-7
    iva, ivb = phase(ALPHA_IV + h, beta), phase(ALPHA_IV - h, beta)
    assert (iva.name, ivb.name) == ("IVa", "IVb")
    assert iva.eta == pytest.approx(ivb.eta, abs=1e-5)
    assert ivb.xi - iva.xi > 0.05  # two minima of equal loss swap: d* jumps


@pytest.mark.parametrize(
    "alpha, beta, word",
    [
        (0.2, 0.2, "alpha + beta"),
        (0.25, 0.25, "alpha + beta"),
        (0.0, 1.0, "alpha"),
        (-0.5, 2.0, "alpha"),
        (1.0, 0.0, "beta"),
        (float("nan"), 1.0, "alpha"),
        (1.0, float("inf"), "beta"),
        ("high", 1.0, "alpha"),
        (1.0, None, "beta"),
    ],
)
def test_invalid_input_names_the_argument(alpha, beta, word):
    with pytest.raises(ValueError, match=word.replace("+", r"\+")):
        phase(alpha, beta)


def test_to_dict_is_json_ready():
    import json

    record = json.loads(json.dumps(phase(1.0, 2.0).to_dict()))
    assert record["name"] == "III" and record["eta"] == 0.75
    assert set(record["term_descriptions"]) == {"K_pp", "F_ac"}
