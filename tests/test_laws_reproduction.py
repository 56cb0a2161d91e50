"""Published results the loss laws must reproduce (expected values come from the papers, not from timelaw).

- Besiroglu et al. 2024 (Epoch), "Chinchilla Scaling: A replication attempt", arXiv:2404.10102: fitting the
  Chinchilla form to the 240 points extracted from Hoffmann et al.'s Figure 4 with Huber (delta 1e-3) on
  log loss, L-BFGS from a grid, gives A = 477.8, B = 2143, E = 1.8172, alpha = 0.3473, beta = 0.3672
  (github epoch-research/analyzing-chinchilla); their bootstrap 95% interval for alpha is [0.317, 0.373].
- Muennighoff et al. 2023, github huggingface/datablations README: L(6.34e9, 242e9, U=25e9) = 2.2256 and
  L(8.67e9, 178e9, U=25e9) = 2.2270.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from timelaw.laws import compute_optimal_exponents, fit_loss_law, make_law, preset

EPOCH_CSV = Path(__file__).resolve().parent / "data" / "epoch_chinchilla_points.csv"  # see data/README.md
EPOCH_EXACT = {"A": 477.8, "B": 2143.0, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672}
TOLERANCE = {"A": 0.05, "B": 0.05, "E": 0.005, "alpha": 0.01, "beta": 0.01}  # relative, from issue 4
EPOCH_ALPHA_95 = (0.317, 0.373)


def epoch_runs() -> dict[str, np.ndarray]:
    """Epoch's 240 points: all 245 less the 5 with the highest loss; D follows from C = 6 N D."""
    with EPOCH_CSV.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_params = np.array([float(row["Model Size"]) for row in rows])
    flops = np.array([float(row["Training FLOP"]) for row in rows])
    loss = np.array([float(row["loss"]) for row in rows])
    keep = np.argsort(loss)[:-5]
    return {"N": n_params[keep], "C": flops[keep], "loss": loss[keep]}


@pytest.fixture(scope="module")
def epoch_fit():
    runs = epoch_runs()
    law = fit_loss_law(runs, form="chinchilla", n_bootstrap=100, seed=0)
    return law, None  # (how long it takes is benchmarked, not tested)


def test_epoch_table_has_240_points():
    runs = epoch_runs()
    assert len(runs["loss"]) == 240
    assert runs["loss"].max() < 5.0  # the dropped points include the 5.006 outlier


@pytest.mark.parametrize("name", list(EPOCH_EXACT))
def test_epoch_replication_constants(epoch_fit, name):
    law, _ = epoch_fit
    expected = EPOCH_EXACT[name]
    assert law.params_[name] == pytest.approx(expected, rel=TOLERANCE[name])


def test_epoch_bootstrap_interval_for_alpha_overlaps_epochs(epoch_fit):
    law, _ = epoch_fit
    low, high = law.ci_["alpha"]
    assert low < law.params_["alpha"] < high
    assert low <= EPOCH_ALPHA_95[1] and high >= EPOCH_ALPHA_95[0]
    assert law.ci_level_ == 0.95 and law.samples_.shape == (100, 5)


def test_epoch_compute_optimal_exponent(epoch_fit):
    law, _ = epoch_fit
    from_constants = law.params_["beta"] / (law.params_["alpha"] + law.params_["beta"])
    assert from_constants == pytest.approx(0.51, abs=0.01)
    n_exponent, d_exponent = compute_optimal_exponents(law)
    assert n_exponent == pytest.approx(from_constants, abs=1e-6)  # numeric allocation agrees with the algebra
    assert n_exponent + d_exponent == pytest.approx(1.0)


def test_epoch_residuals_and_provenance(epoch_fit):
    law, _ = epoch_fit
    assert law.residuals_.shape == (240,)
    # Huber with a tiny delta is a median-type fit: about as many runs above the curve as below.
    assert abs(np.mean(law.residuals_ > 0) - 0.5) < 0.1
    assert law.provenance_["source"] == "fitted" and law.provenance_["n_runs"] == 240
    assert "Huber" in law.provenance_["method"]


@pytest.mark.parametrize(
    ("n_params", "tokens", "expected"),
    [(6.34e9, 242e9, 2.2256), (8.67e9, 178e9, 2.2270)],
)
def test_muennighoff_check_values(n_params, tokens, expected):
    law = preset("muennighoff2023")
    assert round(float(law.predict(n_params, tokens, unique_tokens=25e9)), 4) == expected
    # composite2026_data is the same law for a typical shape (no d_model / n_layers given)
    composite = preset("composite2026_data")
    assert round(float(composite.predict(n_params, tokens, unique_tokens=25e9)), 4) == expected


def test_data_constrained_without_unique_tokens_is_chinchilla():
    law = preset("muennighoff2023")
    same = {name: law.params_[name] for name in ("E", "A", "B", "alpha", "beta")}
    chinchilla = make_law("chinchilla", same)
    n_params = np.geomspace(1e7, 1e11, 50)
    tokens = np.geomspace(1e12, 1e8, 50)
    np.testing.assert_allclose(law.predict(n_params, tokens), chinchilla.predict(n_params, tokens), rtol=1e-12)
    # No repeated data and no parameters beyond the compute-optimal size for U (~0.05 U here): no change.
    small, many = np.geomspace(1e7, 1e9, 20), np.geomspace(1e11, 1e12, 20)
    np.testing.assert_allclose(
        law.predict(small, many, unique_tokens=many), chinchilla.predict(small, many), rtol=1e-12
    )


def test_repeating_data_is_worth_less_than_fresh_data():
    law = preset("muennighoff2023")
    fresh = law.predict(1e9, 100e9)
    four_epochs = law.predict(1e9, 100e9, unique_tokens=25e9)
    forty_epochs = law.predict(1e9, 100e9, unique_tokens=2.5e9)
    assert fresh < four_epochs < forty_epochs
    # Muennighoff et al.: up to ~4 epochs, repeated tokens are almost as good as unique ones.
    assert four_epochs - fresh < 0.01
