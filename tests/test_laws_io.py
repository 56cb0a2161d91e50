"""Presets, JSON round-trips and the `timelaw fit` command."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from timelaw.laws import PRESET_NAMES, fit_loss_law, load_law, make_law, preset
from timelaw.laws.cli import register

CHINCHILLA = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
N_GRID = np.geomspace(1e7, 1e11, 7)
D_GRID = np.geomspace(1e9, 1e13, 7)


def chinchilla_runs(seed: int = 0) -> dict[str, np.ndarray]:
    n_params, tokens = (x.ravel() for x in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e8, 1e11, 6)))
    loss = make_law("chinchilla", CHINCHILLA).predict(n_params, tokens)
    loss = loss * np.exp(np.random.default_rng(seed).normal(0, 0.01, loss.shape))
    return {"N": n_params, "D": tokens, "loss": loss}


# --- presets --------------------------------------------------------------------------------------------


def test_preset_names():
    assert set(PRESET_NAMES) == {"hoffmann2022", "epoch2024", "composite2026", "muennighoff2023", "composite2026_data",
                                 "kaplan2020"}


@pytest.mark.parametrize("name", ["hoffmann2022", "epoch2024", "muennighoff2023", "kaplan2020"])
def test_presets_carry_citations(name):
    law = preset(name)
    assert law.provenance_["source"] == "published"
    assert "arXiv:" in law.provenance_["citation"]
    loss = law.predict(np.array([1e9, 1e10]), np.array([2e10, 2e11]))
    assert np.all(np.diff(loss) < 0) and np.all((1.0 < loss) & (loss < 4.0))


def test_preset_constants_as_published():
    # Values as printed in the papers / repositories (shared/reference/published_constants.json).
    assert preset("hoffmann2022").params_ == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    assert preset("kaplan2020").params_ == {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    epoch = preset("epoch2024")
    assert epoch.params_["A"] == pytest.approx(482.01, abs=0.01) and epoch.params_["beta"] == 0.36585
    assert epoch.ci_["alpha"] == (0.317, 0.373) and epoch.ci_level_ == 0.95
    muennighoff = preset("muennighoff2023")
    assert muennighoff.params_["A"] == pytest.approx(520.8249516599187, rel=1e-12)
    assert muennighoff.params_["R_D_star"] == 15.387756
    assert preset("hoffmann2022").ci_ is None


def test_presets_are_fresh_copies():
    first = preset("epoch2024")
    first.params_["E"] = 0.0
    assert preset("epoch2024").params_["E"] == 1.81686


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown loss-law preset 'chinchilla2022'.*epoch2024"):
        preset("chinchilla2022")


def test_predict_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="N"):
        preset("epoch2024").predict(np.array([1e9, 0.0]), 1e10)
    with pytest.raises(ValueError, match="no bootstrap samples"):
        preset("epoch2024").predict_interval(1e9, 1e10)


def test_constants_are_checked():
    with pytest.raises(ValueError, match="constants E, A, B, alpha, beta"):
        make_law("chinchilla", {"E": 1.0, "A": 1.0})
    with pytest.raises(ValueError, match="'A' .* > 0"):
        make_law("chinchilla", {**CHINCHILLA, "A": -1.0})
    with pytest.raises(ValueError, match="no constants yet"):
        make_law("kaplan").predict(1e9, 1e10)


# --- JSON -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hoffmann2022", "epoch2024", "muennighoff2023", "kaplan2020"])
def test_preset_json_round_trip(name):
    law = preset(name)
    again = load_law(law.to_json())
    assert type(again) is type(law)
    assert again.params_ == law.params_ and again.ci_ == law.ci_
    assert again.provenance_ == law.provenance_
    np.testing.assert_array_equal(
        again.predict(N_GRID, D_GRID, unique_tokens=D_GRID / 8), law.predict(N_GRID, D_GRID, unique_tokens=D_GRID / 8)
    )


def test_fitted_json_round_trip(tmp_path):
    law = fit_loss_law(chinchilla_runs(), n_bootstrap=20)
    path = tmp_path / "law.json"
    law.to_json(path)
    for source in (path, str(path), json.loads(path.read_text()), path.read_text()):
        again = load_law(source)
        assert again.params_ == law.params_ and again.ci_ == law.ci_ and again.ci_level_ == law.ci_level_
        np.testing.assert_array_equal(again.samples_, law.samples_)
        np.testing.assert_array_equal(again.residuals_, law.residuals_)
        np.testing.assert_array_equal(again.predict_interval(N_GRID, D_GRID), law.predict_interval(N_GRID, D_GRID))


def test_load_law_rejects_other_json():
    with pytest.raises(ValueError, match="not a timelaw loss law"):
        load_law({"form": "cubic", "params": {}})
    with pytest.raises(ValueError, match="neither JSON text nor an existing file"):
        load_law("no-such-law.json")


# --- CLI ------------------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="timelaw")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_fit_prints_intervals_and_writes_json(tmp_path, capsys):
    runs = chinchilla_runs()
    csv_path, out = tmp_path / "runs.csv", tmp_path / "law.json"
    lines = ["N,D,loss"] + [f"{n:.17g},{d:.17g},{loss:.17g}" for n, d, loss in zip(runs["N"], runs["D"], runs["loss"])]
    csv_path.write_text("\n".join(lines) + "\n")

    assert run_cli("fit", str(csv_path), "--form", "chinchilla", "--out", str(out), "--bootstrap", "20") == 0

    printed = capsys.readouterr().out
    assert "95% interval" in printed and "alpha" in printed and f"wrote {out}" in printed
    law = load_law(out)
    assert law.params_["alpha"] == pytest.approx(CHINCHILLA["alpha"], rel=0.1)
    low, high = law.ci_["alpha"]
    assert f"[{low:.5g}, {high:.5g}]" in printed


def test_cli_fit_reports_a_bad_table(tmp_path, capsys):
    csv_path = tmp_path / "runs.csv"
    csv_path.write_text("N,tokens,loss\n1e8,1e9,3.0\n")
    assert run_cli("fit", str(csv_path), "--out", str(tmp_path / "law.json")) == 2
    assert "neither a 'D'" in capsys.readouterr().err
    assert not (tmp_path / "law.json").exists()
