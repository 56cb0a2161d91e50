"""Published loss laws, with their citations. Nothing here was measured by timelaw.

Values are copied from the papers and repositories named in each entry (transcribed into
shared/reference/published_constants.json when the project started). Losses are in nats per token on each
paper's own data, so absolute values transfer between setups only roughly; trends transfer better.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from timelaw.laws.base import LossLaw
from timelaw.laws.forms import make_law
from timelaw.provenance import provenance

_PRESETS: dict[str, dict[str, Any]] = {
    "hoffmann2022": {
        "form": "chinchilla",
        "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "citation": (
            "Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models', arXiv:2203.15556, "
            "approach 3 (parametric fit), constants as printed (rounded)"
        ),
        "note": (
            "Besiroglu et al. 2024 (arXiv:2404.10102) find that these rounded constants do not fit the "
            "paper's own data and imply ~70 tokens per parameter; prefer epoch2024"
        ),
    },
    "epoch2024": {
        "form": "chinchilla",
        "params": {"E": 1.81686, "A": 482.00572, "B": 2085.4342, "alpha": 0.34781, "beta": 0.36585},
        "ci": {
            "E": (1.769, 1.871),
            "A": (285.2, 743.6),
            "B": (1042.4, 5810.3),
            "alpha": (0.317, 0.373),
            "beta": (0.331, 0.415),
        },
        "ci_level": 0.95,
        "citation": (
            "Besiroglu, Erdil, Barnett, You 2024, 'Chinchilla Scaling: A replication attempt', "
            "arXiv:2404.10102; values and bootstrap 95% intervals (4000 resamples) from the notebook "
            "data_analysis.ipynb of github.com/epoch-research/analyzing-chinchilla"
        ),
        "note": "refit of Hoffmann et al.'s approach 3 to 240 points extracted from their Figure 4",
    },
    "muennighoff2023": {
        "form": "data_constrained",
        # The repository gives the scales as logarithms (a, b, e) and the repetition constants directly.
        "log_params": {"E": 0.6254804, "A": 6.255414, "B": 7.3049974},
        "params": {"alpha": 0.3526596, "beta": 0.3526596, "R_D_star": 15.387756, "R_N_star": 5.309743},
        "citation": (
            "Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models', arXiv:2305.16264; "
            "constants from the 'Parametric Fit' section of github.com/huggingface/datablations (README), "
            "which checks L(6.34e9, 242e9, U=25e9) = 2.2256 and L(8.67e9, 178e9, U=25e9) = 2.2270"
        ),
        "note": "alpha = beta were tied in the fit; the authors warn that absolute losses are unreliable",
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
    },
}

PRESET_NAMES = tuple(_PRESETS)


def preset(name: str) -> LossLaw:
    """A published law: "hoffmann2022", "epoch2024", "muennighoff2023" or "kaplan2020" (a fresh copy)."""
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
    return make_law(entry["form"], params, ci=entry.get("ci"), ci_level=entry.get("ci_level"), provenance=record)
