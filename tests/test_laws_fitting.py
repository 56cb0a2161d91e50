"""Fitting: synthetic recovery for every form, warnings on degenerate designs, input tables and their errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from timelaw.laws import DegenerateFitWarning, fit_loss_law, make_law, read_runs

# Known constants to generate runs from (Epoch-like Chinchilla; Kaplan's and Muennighoff's published laws).
TRUE = {
    "chinchilla": {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37},
    "kaplan": {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
    "compute_only": {"E": 1.7, "A": 2000.0, "gamma": 0.15},
    "data_constrained": {
        "E": 1.8691, "A": 520.82, "B": 1487.7, "alpha": 0.35266, "beta": 0.35266,
        "R_D_star": 15.388, "R_N_star": 5.3097,
    },
}


def design(form: str) -> dict[str, np.ndarray]:
    """Runs that vary N and D independently (and, for data_constrained, the number of epochs)."""
    if form == "data_constrained":
        n_params, unique, epochs = np.meshgrid(np.geomspace(1e7, 1e10, 6), [1e8, 1e9, 1e10], [1, 4, 16, 64])
        return {"N": n_params.ravel(), "D": (unique * epochs).ravel(), "U": unique.ravel()}
    n_params, tokens = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e8, 1e11, 8))
    if form == "kaplan":  # Kaplan's regime: smaller (non-embedding) models, more tokens
        n_params, tokens = n_params / 10, tokens * 10
    return {"N": n_params.ravel(), "D": tokens.ravel()}


def synthetic_runs(form: str, noise: float = 0.01, seed: int = 1) -> dict[str, np.ndarray]:
    runs = design(form)
    clean = make_law(form, TRUE[form]).predict(runs["N"], runs["D"], unique_tokens=runs.get("U"))
    rng = np.random.default_rng(seed)
    return {**runs, "loss": clean * np.exp(rng.normal(0.0, noise, clean.shape))}


@pytest.mark.parametrize("form", list(TRUE))
def test_synthetic_recovery_within_intervals(form):
    law = fit_loss_law(synthetic_runs(form), form=form, n_bootstrap=40, seed=0)
    for name, true_value in TRUE[form].items():
        low, high = law.ci_[name]
        assert low <= true_value <= high, f"{form} {name}: true {true_value} outside [{low}, {high}]"
        assert low < law.params_[name] < high


@pytest.mark.parametrize("form", list(TRUE))
def test_noiseless_runs_give_the_constants_back(form):
    law = fit_loss_law(synthetic_runs(form, noise=0.0), form=form, n_bootstrap=0)
    for name, true_value in TRUE[form].items():
        assert law.params_[name] == pytest.approx(true_value, rel=1e-3), name
    assert law.ci_ is None and law.samples_ is None
    assert np.max(np.abs(law.residuals_)) < 1e-5


def test_fit_returns_the_estimator_itself():
    law = make_law("chinchilla")
    assert law.fit(synthetic_runs("chinchilla"), n_bootstrap=0) is law
    assert set(law.params_) == {"E", "A", "B", "alpha", "beta"}


def test_bootstrap_is_repeatable_with_a_seed():
    runs = synthetic_runs("compute_only")
    first = fit_loss_law(runs, form="compute_only", n_bootstrap=10, seed=3)
    second = fit_loss_law(runs, form="compute_only", n_bootstrap=10, seed=3)
    np.testing.assert_array_equal(first.samples_, second.samples_)


def test_explicit_grid_of_starting_points():
    # One start, in theta = (log E, log A, log B, alpha, beta), is enough on clean data.
    start = [[0.5, 6.0, 7.0, 0.3, 0.3]]
    law = fit_loss_law(synthetic_runs("chinchilla", noise=0.0), grid=start, n_bootstrap=0)
    assert law.params_["alpha"] == pytest.approx(0.35, rel=1e-3)
    with pytest.raises(ValueError, match="shape"):
        fit_loss_law(synthetic_runs("chinchilla"), grid=[[1.0, 2.0]], n_bootstrap=0)


def test_prediction_band_brackets_the_fit():
    law = fit_loss_law(synthetic_runs("chinchilla"), n_bootstrap=40)
    n_params, tokens = np.geomspace(1e8, 1e11, 5)[:, None], np.geomspace(1e9, 1e12, 4)[None, :]
    low, high = law.predict_interval(n_params, tokens, level=0.9)
    center = law.predict(n_params, tokens)
    assert low.shape == high.shape == center.shape == (5, 4)
    assert np.all(low < high)
    assert np.all((low <= center * 1.001) & (center <= high * 1.001))
    # Extrapolating far beyond the runs widens the band.
    near = np.subtract(*law.predict_interval(1e9, 1e10)[::-1])
    far = np.subtract(*law.predict_interval(1e12, 1e14)[::-1])
    assert far > near


# --- degenerate designs -------------------------------------------------------------------------------


def test_warns_when_tokens_are_proportional_to_parameters():
    n_params = np.geomspace(1e7, 1e10, 30)
    tokens = 20 * n_params  # every run at "20 tokens per parameter": N and D move together
    loss = make_law("chinchilla", TRUE["chinchilla"]).predict(n_params, tokens)
    with pytest.warns(DegenerateFitWarning, match="cannot be separated"):
        fit_loss_law({"N": n_params, "D": tokens, "loss": loss}, n_bootstrap=0, grid=8)


def test_warns_when_one_variable_never_changes():
    n_params = np.geomspace(1e7, 1e10, 30)
    loss = make_law("chinchilla", TRUE["chinchilla"]).predict(n_params, 1e10)
    with pytest.warns(DegenerateFitWarning, match="same D"):
        fit_loss_law({"N": n_params, "D": np.full(30, 1e10), "loss": loss}, n_bootstrap=0, grid=8)


def test_warns_when_data_constrained_runs_never_repeat_data():
    runs = synthetic_runs("chinchilla")
    with pytest.warns(DegenerateFitWarning, match="repeats data"):
        fit_loss_law({**runs, "U": runs["D"]}, form="data_constrained", n_bootstrap=0, grid=4)


def test_no_warning_on_a_good_design():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateFitWarning)
        fit_loss_law(synthetic_runs("chinchilla"), n_bootstrap=0, grid=8)


# --- tables ---------------------------------------------------------------------------------------------


def test_flops_column_gives_tokens():
    table = read_runs({"N": [1e8, 2e8], "C": [6e18, 1.2e19], "loss": [3.0, 2.9]})
    np.testing.assert_allclose(table.tokens, [1e10, 1e10])


def test_every_table_format_gives_the_same_fit(tmp_path):
    pandas = pytest.importorskip("pandas")
    runs = synthetic_runs("data_constrained")
    csv_path, jsonl_path = tmp_path / "runs.csv", tmp_path / "runs.jsonl"
    pandas.DataFrame(runs).rename(columns={"U": "unique_tokens"}).to_csv(csv_path, index=False)
    rows = [{name: float(values[i]) for name, values in runs.items()} for i in range(len(runs["N"]))]
    jsonl_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tables = [read_runs(source) for source in (runs, pandas.DataFrame(runs), str(csv_path), jsonl_path)]
    for table in tables:
        np.testing.assert_allclose(table.n_params, runs["N"])
        np.testing.assert_allclose(table.tokens, runs["D"])
        np.testing.assert_allclose(table.loss, runs["loss"])
        np.testing.assert_allclose(table.unique_tokens, runs["U"])
    assert "runs.csv" in tables[2].source


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"N": [1e8, 2e8], "D": [1e9, 1e9]}, "no column 'loss'"),
        ({"N": [1e8, 2e8], "loss": [3.0, 2.9]}, "neither a 'D'"),
        ({"N": [1e8, -2e8], "D": [1e9, 1e9], "loss": [3.0, 2.9]}, "column 'N' must hold finite numbers > 0.*row 1"),
        ({"N": [1e8, 2e8], "D": [1e9, 0.0], "loss": [3.0, 2.9]}, "column 'D' .*row 1"),
        ({"N": [1e8, 2e8], "D": [1e9, 1e9], "loss": [np.nan, 2.9]}, "column 'loss' .*NaN.*row 0"),
        ({"N": [1e8, 2e8], "D": [1e9, 1e9], "loss": [3.0, 2.9, 2.8]}, "different lengths"),
        ({"N": ["big", "bigger"], "D": [1e9, 1e9], "loss": [3.0, 2.9]}, "column 'N' must hold numbers"),
        ({"N": [1e8, 2e8], "D": [1e9, 1e9], "loss": [3.0, 2.9], "U": [1e9, np.inf]}, "column 'U'"),
    ],
)
def test_bad_tables_are_rejected_with_the_column_named(columns, message):
    with pytest.raises(ValueError, match=message):
        read_runs(columns)


def test_bad_files_are_rejected(tmp_path):
    missing_cell = tmp_path / "runs.csv"
    missing_cell.write_text("N,D,loss\n1e8,1e9,3.0\n2e8,,2.9\n")
    with pytest.raises(ValueError, match="column 'D' .*row 1"):
        read_runs(missing_cell)
    spreadsheet = tmp_path / "runs.xlsx"
    spreadsheet.write_bytes(b"PK")
    with pytest.raises(ValueError, match="must end in .csv"):
        read_runs(spreadsheet)
    with pytest.raises(ValueError, match="does not exist"):
        read_runs(tmp_path / "absent.csv")
    with pytest.raises(TypeError, match="DataFrame"):
        read_runs(42)


def test_too_few_runs_for_the_form():
    with pytest.raises(ValueError, match="needs more than 5 runs"):
        fit_loss_law({"N": [1e8, 2e8, 4e8], "D": [1e9, 2e9, 1e9], "loss": [3.0, 2.9, 2.8]})


def test_unknown_form():
    with pytest.raises(ValueError, match="unknown loss-law form 'chinchila'.*chinchilla"):
        fit_loss_law(synthetic_runs("chinchilla"), form="chinchila")
