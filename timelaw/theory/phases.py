"""The 4+3 compute-optimal phases of power-law random features (PLRF) trained by one-pass SGD.

Data x_j = j^(-alpha) z_j, target <x, b> with b_j = j^(-beta); d features; compute f = d x batch x
iterations. In each region of the (alpha, beta) plane two terms of the sum-of-power-laws loss dominate
(see docs/theory.md); balancing them at fixed f gives d* ~ f^xi and loss* ~ f^(-eta).

The formulas below are derived in docs/theory.md by balancing those terms; they were checked against the
IsoFLOP procedure on the deterministic equivalent (`timelaw.theory.compute_optimal`), not transcribed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA_IV = 1.0 - 1.0 / math.sqrt(2.0)  # IVa / IVb: the two candidate optima give the same loss here
PHASE_NAMES = ("Ia", "Ib", "Ic", "II", "III", "IVa", "IVb")

# The terms of the loss (names used in `Phase.terms` and in `PowerLawTerms`).
TERM_DESCRIPTIONS = {
    "F_pp": "pure-point forcing: the target's top directions, not yet learned",
    "F_ac": "absolutely-continuous forcing: target mass spread over the bulk of the spectrum by W",
    "F_0": "limit level F_0(d): the part of the target d features cannot represent",
    "K_pp": "SGD noise: early loss fed back through the kernel's slow modes",
}


@dataclass(frozen=True)
class Phase:
    """Where (alpha, beta) lies and the compute-optimal exponents there: d* ~ f^xi, loss ~ f^(-eta)."""

    name: str
    alpha: float
    beta: float
    xi: float
    eta: float
    terms: tuple[str, str]  # the two terms whose balance at fixed compute sets xi and eta
    region: str

    def to_dict(self) -> dict:
        return {
            "name": self.name, "alpha": self.alpha, "beta": self.beta, "xi": self.xi, "eta": self.eta,
            "terms": list(self.terms), "region": self.region,
            "term_descriptions": {t: TERM_DESCRIPTIONS[t] for t in self.terms},
        }


def check_exponents(alpha: float, beta: float) -> tuple[float, float]:
    """Validate (alpha, beta) at the boundary: finite, positive, and 2(alpha + beta) > 1."""
    values = {}
    for name, value in (("alpha", alpha), ("beta", beta)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a real number, got {value!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        values[name] = value
    alpha, beta = values["alpha"], values["beta"]
    if alpha + beta <= 0.5:
        raise ValueError(
            f"alpha + beta must be > 1/2 (got alpha={alpha}, beta={beta}, sum {alpha + beta}): below this "
            "line the target has infinite variance and the loss follows no power law"
        )
    return alpha, beta


def phase(alpha: float, beta: float) -> Phase:
    """The phase of (alpha, beta) and its compute-optimal exponents.

    Boundaries: 2 alpha = 1, 2 beta = 1, alpha = beta (for 2 alpha > 1), alpha = 1/4 and
    alpha = 1 - 1/sqrt(2) (for 2 alpha < 1 < 2 beta). A point on a boundary belongs to the phase whose
    `region` includes it; the exponents are continuous across every boundary except xi across
    alpha = 1 - 1/sqrt(2), where the optimal d jumps between two minima of equal loss.
    """
    a, b = check_exponents(alpha, beta)
    name, xi, eta, terms, region = _classify(a, b)
    return Phase(name=name, alpha=a, beta=b, xi=xi, eta=eta, terms=terms, region=region)


def _classify(a: float, b: float):
    if 2 * b < 1:
        if 2 * a >= 1:
            return ("Ia", 1 / (2 * a + 1), (2 * a + 2 * b - 1) / (2 * a + 1), ("F_pp", "F_0"), "2 beta < 1 <= 2 alpha")
        # The paper proves Ib for alpha > 1/4 and conjectures it below; (0.2, 0.45) agrees numerically.
        return ("Ib", 0.5, (2 * a + 2 * b - 1) / 2, ("F_pp", "F_0"), "2 alpha < 1, 2 beta < 1, alpha + beta > 1/2")
    if 2 * a >= 1:
        if b < a:
            return ("II", b / (a + b), (2 * a + 2 * b - 1) / (2 * (a + b)), ("F_pp", "F_ac"), "1 <= 2 beta < 2 alpha")
        return ("III", 0.5, 1 - 1 / (4 * a), ("K_pp", "F_ac"), "1 <= 2 alpha <= 2 beta")
    if a >= ALPHA_IV:
        return ("IVa", 0.5, a, ("K_pp", "F_0"), "1 - 1/sqrt(2) <= alpha < 1/2 <= beta")
    if a > 0.25:
        denom = 2 * b - a - 2 * a * b
        return ("IVb", (b - a) / denom, (1 - 2 * a) * (2 * a + 2 * b - 1) / (2 * denom), ("F_pp", "K_pp"),
                "1/4 < alpha < 1 - 1/sqrt(2), 1/2 <= beta")
    xi = (2 * a + 2 * b - 1) / (2 * (3 * a + 2 * b - 2 * a * b - 1))
    return ("Ic", xi, 2 * a * xi, ("F_pp", "F_0"), "alpha <= 1/4, 1/2 <= beta")
