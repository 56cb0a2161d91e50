"""The solvable power-law random features (PLRF) model and its 4+3 compute-optimal phases.

Paquette, Paquette, Xiao, Pennington (2024), "4+3 Phases of Compute-Optimal Neural Scaling Laws":
  phase(alpha, beta)              which phase, d* ~ f^xi, loss ~ f^(-eta), and the two balancing terms
  compute_optimal(alpha, beta, flops=[...])   IsoFLOP procedure on the deterministic equivalent
  simulate(alpha, beta, d, v, steps)          one-pass SGD, vectorised over seeds
  loss_curve(alpha, beta, d, v, steps)        Volterra deterministic equivalent + sum-of-power-laws terms
  phase_diagram(...)              the (alpha, beta) plane coloured by phase (needs matplotlib)
See docs/theory.md for the equations and where each comes from.
"""
from timelaw.theory.diagram import phase_diagram
from timelaw.theory.optimal import ComputeOptimal, compute_optimal
from timelaw.theory.phases import PHASE_NAMES, Phase, phase
from timelaw.theory.plrf import LossCurve, PowerLawTerms, SGDRun, loss_curve, power_law_terms, simulate

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
