"""Published loss laws, with their citations. Nothing here was measured by timelaw.

Values are copied from the papers and repositories named in each entry (transcribed into
shared/reference/published_constants.json when the project started). Losses are in nats per token on each
paper's own data, so absolute values transfer between setups only roughly; trends transfer better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from timelaw.laws.base import LossLaw
from timelaw.laws.batch import CriticalBatch
from timelaw.laws.forms import make_law
from timelaw.laws.ranges import FitRange
from timelaw.provenance import provenance

# The data each law was fitted on. Chinchilla: the 240 points Epoch AI extracted from Hoffmann et al.'s figure 4
# (shared/reference/epoch_chinchilla_points.csv: N 5.7e7-1.6e10, D = C / 6N 2.5e8-3.2e11). Gemstones: the 16
# shared shapes (d_model / n_layers 3.2-256, 3-80 layers). Kaplan: 768 to 1.5e9 non-embedding parameters,
# 22M to 23B tokens (Kaplan et al. 2020, section 1.1). Muennighoff: up to 9B parameters and 900B tokens (their
# abstract); the lower ends are Chinchilla's, an approximation.
_CHINCHILLA_RANGE = {"N": (5.7e7, 1.6e10), "D": (2.5e8, 3.2e11), "tokens_per_param": (0.036, 341.0)}
_GEMSTONES_SHAPES = {"aspect_ratio": (3.2, 256.0), "n_layers": (3.0, 80.0)}
_MUENNIGHOFF_RANGE = {"N": (5.7e7, 9e9), "D": (2.5e8, 9e11)}
# The shape penalty fitted by timelaw to the 16 Gemstones shapes under 600M (all 160 rows;
# `python benchmarks/shape_law.py`), with bootstrap 95% intervals: shared by the composite presets.
_SHAPE_PARAMS = {"R0": 995.35, "gamma": 1.4833}
_SHAPE_CI = {"R0": (793.8, 1293.2), "gamma": (1.118, 1.766)}
_MUENNIGHOFF_LOG_PARAMS = {"E": 0.6254804, "A": 6.255414, "B": 7.3049974}
_MUENNIGHOFF_PARAMS = {"alpha": 0.3526596, "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743}

# Epoch AI's refit of Chinchilla: the constants and bootstrap 95% intervals of epoch2024, which composite2026
# shares.
_EPOCH_PARAMS = {"E": 1.81686, "A": 482.00572, "B": 2085.4342, "alpha": 0.34781, "beta": 0.36585}
_EPOCH_CI = {"E": (1.769, 1.871), "A": (285.2, 743.6), "B": (1042.4, 5810.3), "alpha": (0.317, 0.373),
             "beta": (0.331, 0.415)}

_PRESETS: dict[str, dict[str, Any]] = {
    "hoffmann2022": {
        "form": "chinchilla",
        "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "citation": (
            "Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models', arXiv:2203.15556, "
            "approach 3 (parametric fit), constants as printed (rounded)"
        ),
        "range": _CHINCHILLA_RANGE,
        "note": (
            "Besiroglu et al. 2024 (arXiv:2404.10102) find that these rounded constants do not fit the "
            "paper's own data and imply ~70 tokens per parameter; prefer epoch2024"
        ),
    },
    "epoch2024": {
        "form": "chinchilla",
        "params": _EPOCH_PARAMS,
        "ci": _EPOCH_CI,
        "ci_level": 0.95,
        "citation": (
            "Besiroglu, Erdil, Barnett, You 2024, 'Chinchilla Scaling: A replication attempt', "
            "arXiv:2404.10102; values and bootstrap 95% intervals (4000 resamples) from the notebook "
            "data_analysis.ipynb of github.com/epoch-research/analyzing-chinchilla"
        ),
        "note": "refit of Hoffmann et al.'s approach 3 to 240 points extracted from their Figure 4",
        "range": _CHINCHILLA_RANGE,
    },
    "composite2026": {
        "form": "shape",
        # E, A, B, alpha, beta: epoch2024; R0, gamma: the shape penalty fitted here on Gemstones.
        "params": {**_EPOCH_PARAMS, **_SHAPE_PARAMS},
        "ci": {**_EPOCH_CI, **_SHAPE_CI},
        "ci_level": 0.95,
        "critical_batch": True,
        "citation": (
            "composed: E, A, B, alpha, beta and their intervals from epoch2024 (Besiroglu et al. 2024, "
            "arXiv:2404.10102); the aspect-ratio penalty (1 + (r / R0)^gamma) on the parameter term fitted by "
            "timelaw to Gemstones (McLeish et al. 2025, github.com/mcleish7/gemstone-scaling-laws, 16 shapes "
            "48M-543M on Dolma); the batch term D_eff = D / (1 + B / B_crit(L)) of McCandlish et al. 2018 "
            "(arXiv:1812.06162) with B_crit(L) = 2e8 / L^(1/0.21) tokens from Kaplan et al. 2020 "
            "(arXiv:2001.08361, eq. 5.3)"
        ),
        "note": (
            "the shape penalty and the batch term were measured on other data (Dolma; WebText2) than the "
            "Chinchilla terms (MassiveText) and are carried over as relative effects: trust the ranking of "
            "shapes and batches more than absolute losses"
        ),
        "range": {**_CHINCHILLA_RANGE, **_GEMSTONES_SHAPES},
    },
    "muennighoff2023": {
        "form": "data_constrained",
        # The repository gives the scales as logarithms (a, b, e) and the repetition constants directly.
        "log_params": _MUENNIGHOFF_LOG_PARAMS,
        "params": _MUENNIGHOFF_PARAMS,
        "citation": (
            "Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models', arXiv:2305.16264; "
            "constants from the 'Parametric Fit' section of github.com/huggingface/datablations (README), "
            "which checks L(6.34e9, 242e9, U=25e9) = 2.2256 and L(8.67e9, 178e9, U=25e9) = 2.2270"
        ),
        "note": "alpha = beta were tied in the fit; the authors warn that absolute losses are unreliable",
        "range": _MUENNIGHOFF_RANGE,
    },
    "composite2026_data": {
        "form": "shape_data_constrained",
        "log_params": _MUENNIGHOFF_LOG_PARAMS,
        "params": {**_MUENNIGHOFF_PARAMS, **_SHAPE_PARAMS},
        "ci": _SHAPE_CI,
        "ci_level": 0.95,
        "critical_batch": True,
        "citation": (
            "composed: the data-constrained law of muennighoff2023 (Muennighoff et al. 2023, arXiv:2305.16264, "
            "datablations constants), the shape penalty of composite2026 (fitted by timelaw to Gemstones, "
            "McLeish et al. 2025) and its batch term (McCandlish et al. 2018; Kaplan et al. 2020, eq. 5.3)"
        ),
        "note": (
            "the planner's default when unique_tokens is given; intervals only for the shape constants "
            "(the data-constrained constants were published without them)"
        ),
        "range": {**_MUENNIGHOFF_RANGE, **_GEMSTONES_SHAPES},
    },
    "kaplan2020": {
        "form": "kaplan",
        "params": {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
        "citation": (
            "Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', arXiv:2001.08361, eq. 1.5 "
            "with the joint L(N, D) fit of section 4"
        ),
        "note": (
            "N counts non-embedding parameters; loss in nats per token on WebText2. Porian et al. 2024 "
            "('Resolving Discrepancies in Compute-Optimal Scaling of Language Models') trace its "
            "model-heavy compute-optimal allocation to last-layer flops, warmup length and optimizer tuning"
        ),
        "range": {"N": (768.0, 1.5e9), "D": (2.2e7, 2.3e10)},
    },
}

PRESET_NAMES = tuple(_PRESETS)


def preset(name: str) -> LossLaw:
    """A published law: "hoffmann2022", "epoch2024", "composite2026" (shape- and batch-aware, the planner's
    default), "muennighoff2023", "composite2026_data" (composite2026 with repeated data, the default when
    unique tokens are given) or "kaplan2020" (a fresh copy)."""
    if name not in _PRESETS:
        raise ValueError(f"unknown loss-law preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    entry = _PRESETS[name]
    params = {**{k: float(np.exp(v)) for k, v in entry.get("log_params", {}).items()}, **entry["params"]}
    record = provenance(
        method="published constants",
        data=f"as published (preset {name!r})",
        source="published",
        citation=entry["citation"],
        note=entry["note"],
    )
    return make_law(entry["form"], params, ci=entry.get("ci"), ci_level=entry.get("ci_level"), provenance=record,
                    fit_range=FitRange(entry["range"], source=f"the data of preset {name!r} (see its citation)"),
                    critical_batch=CriticalBatch() if entry.get("critical_batch") else None)
