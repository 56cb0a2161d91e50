"""The batch term: tokens trained in batches above the critical batch size are worth less.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv:1812.06162, eq. 2.11): to reach a
given loss, the steps S and tokens E trained with batch B obey (S / S_min - 1)(E / E_min - 1) = 1, which gives
E = E_min (1 + B / B_crit). So D tokens trained with batch B are worth

    D_eff = D / (1 + B / B_crit)

tokens trained with small batches. Kaplan et al. 2020 ("Scaling Laws for Neural Language Models",
arXiv:2001.08361, eq. 5.3 and figure 10) measured B_crit(L) = B_* / L^(1 / alpha_B) with B_* = 2e8 tokens and
alpha_B = 0.21: the critical batch grows as the loss falls, so longer runs (more data) can use larger batches,
as Zhang et al. 2024 ("How Does Critical Batch Size Scale in Pre-training?", arXiv:2410.21676) also find.

Kaplan's losses are nats per token on WebText2 with the GPT-2 tokenizer, so B_* transfers to other data only
roughly; `fit_critical_batch` refits it on a user's batch sweep. The critical batch is evaluated at the final
loss, where it is largest: earlier in training the batch is further above critical, so this is optimistic
for batches far above B_crit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

KAPLAN_B_STAR_TOKENS = 2.0e8
KAPLAN_ALPHA_B = 0.21
KAPLAN_CITATION = ("Kaplan et al. 2020, arXiv:2001.08361, eq. 5.3 (B_crit(L) = B_* / L^(1/alpha_B), "
                   "B_* = 2e8 tokens, alpha_B = 0.21), in McCandlish et al. 2018's E = E_min (1 + B / B_crit)")
# Kaplan et al. 2020 (section 2.2) trained 2.5e5 steps after a 3,000-step linear warmup: a run shorter than
# that warmup is mostly warmup, a regime the measured B_crit(L) did not see.
KAPLAN_MIN_STEPS = 3000.0


@dataclass(frozen=True)
class CriticalBatch:
    """B_crit(L) = b_star_tokens / L^(1 / alpha_b), in tokens per optimizer step. min_steps: the fewest
    optimizer steps of the runs it was measured on (None: not known); a plan with fewer gets a note."""

    b_star_tokens: float = KAPLAN_B_STAR_TOKENS
    alpha_b: float = KAPLAN_ALPHA_B
    source: str = KAPLAN_CITATION
    min_steps: Optional[float] = KAPLAN_MIN_STEPS

    def __post_init__(self):
        for name in ("b_star_tokens", "alpha_b"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"CriticalBatch.{name} must be a finite number > 0, got {value!r}")
        if self.min_steps is not None and not (isinstance(self.min_steps, (int, float)) and self.min_steps > 0):
            raise ValueError(f"CriticalBatch.min_steps must be a number > 0 or None, got {self.min_steps!r}")

    def tokens(self, loss) -> np.ndarray:
        """The critical batch in tokens at `loss` (nats per token)."""
        return self.b_star_tokens / np.asarray(loss, dtype=float) ** (1.0 / self.alpha_b)

    def log_effective_tokens(self, log_tokens, log_batch, loss) -> np.ndarray:
        """log D_eff = log D - log(1 + B / B_crit(loss))."""
        log_ratio = log_batch - np.log(self.tokens(loss))
        return log_tokens - np.logaddexp(0.0, log_ratio)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record) -> "CriticalBatch":
        return cls(**{"min_steps": None, **record})  # a file from before min_steps: not known


def fit_critical_batch(law, runs, *, alpha_b: float = KAPLAN_ALPHA_B, delta: float = 1e-3) -> CriticalBatch:
    """Refit B_* of the batch term to a batch sweep, the law's other constants held fixed.

    runs: a runs table (see timelaw.laws.tables) with `batch_tokens`, and `d_model`/`n_layers` for a shape law;
    several batch sizes at otherwise similar settings identify B_*. The objective is the law's own: the summed
    Huber loss of log(measured) - log(predicted), here over log B_* on a grid (1e2 to 1e12 tokens) refined by
    a bounded scalar search. Returns the CriticalBatch; set it with `law.critical_batch_ = ...`.
    """
    from scipy.optimize import minimize_scalar

    from timelaw.laws.fitting import huber
    from timelaw.laws.tables import read_runs

    table = read_runs(runs)
    if table.batch_tokens is None or np.ptp(table.batch_tokens) == 0:
        raise ValueError("a batch sweep needs a 'batch_tokens' column with at least two different batch sizes")
    shape = {} if table.d_model is None else {"d_model": table.d_model, "n_layers": table.n_layers}
    target = np.log(table.loss)
    original = law.critical_batch_

    def objective(log_b_star: float) -> float:
        law.critical_batch_ = CriticalBatch(float(np.exp(log_b_star)), alpha_b, source="fitted to a batch sweep")
        predicted = law.predict(table.n_params, table.tokens, table.unique_tokens, batch_tokens=table.batch_tokens,
                                **shape)
        return float(huber(np.log(predicted) - target, delta)[0].sum())

    try:
        grid = np.linspace(np.log(1e2), np.log(1e12), 41)
        best = grid[int(np.argmin([objective(g) for g in grid]))]
        step = grid[1] - grid[0]
        result = minimize_scalar(objective, bounds=(best - step, best + step), method="bounded",
                                 options={"xatol": 1e-6})
    finally:
        law.critical_batch_ = original
    return CriticalBatch(float(np.exp(result.x)), alpha_b,
                         source=f"fitted to {table.source} (B_* only; alpha_B = {alpha_b:g} as in Kaplan et al. 2020)",
                         min_steps=float(np.min(table.tokens / table.batch_tokens)))
