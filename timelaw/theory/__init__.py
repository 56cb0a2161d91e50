"""The solvable power-law random features (PLRF) model and its 4+3 compute-optimal phases.

Paquette, Paquette, Xiao, Pennington (2024), "4+3 Phases of Compute-Optimal Neural Scaling Laws":
  phase(alpha, beta)              which phase, d* ~ f^xi, loss ~ f^(-eta), and the two balancing terms
  compute_optimal(alpha, beta, flops=[...])   IsoFLOP procedure on the deterministic equivalent
  simulate(alpha, beta, d, v, steps)          one-pass SGD, vectorised over seeds
  loss_curve(alpha, beta, d, v, steps)        Volterra deterministic equivalent + sum-of-power-laws terms
  phase_diagram(...)              the (alpha, beta) plane coloured by phase (needs matplotlib)
See docs/theory.md for the equations and where each comes from.
"""
import importlib

# Each public name and the module that defines it, imported on first use (PEP 562): `timelaw --help` loads
# theory.cli, which must not pay for scipy.optimize / scipy.special through optimal.py and plrf.py.
_WHERE = {
    "phase_diagram": "diagram",
    "ComputeOptimal": "optimal", "compute_optimal": "optimal",
    "PHASE_NAMES": "phases", "Phase": "phases", "phase": "phases",
    "LossCurve": "plrf", "PowerLawTerms": "plrf", "SGDRun": "plrf", "loss_curve": "plrf",
    "power_law_terms": "plrf", "simulate": "plrf",
}

__all__ = [
    "PHASE_NAMES",
    "ComputeOptimal",
    "LossCurve",
    "Phase",
    "PowerLawTerms",
    "SGDRun",
    "compute_optimal",
    "loss_curve",
    "phase",
    "phase_diagram",
    "power_law_terms",
    "simulate",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"timelaw.theory.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'timelaw.theory' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
