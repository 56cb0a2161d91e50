"""The time frontier: the optimal N*, D*, L* and shape for each wall-clock budget, the exponents of N*(t) and
D*(t), and the same under a FLOP budget (C = 6 N D, the law's own compute-optimal split) for comparison.

Exponents are least-squares slopes in log-log space; their intervals are slope +- t(level, n - 2) x standard
error, so they say how well a power law describes the optima across the budgets (the grid of shapes is
discrete, which adds scatter; more budgets give tighter intervals).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from timelaw.config import TrainSetup
from timelaw.laws.allocation import FLOPS_PER_PARAM_TOKEN  # C = 6 N D
from timelaw.plan.inputs import budget_seconds, resolve_device, resolve_law, resolve_setup
from timelaw.plan.predict import Prediction, predict_resolved
from timelaw.plan.search import outcome, price_candidates, u_curve
from timelaw.plan.space import SearchSpace

__all__ = ["Exponent", "Frontier", "frontier", "fit_exponent", "FLOPS_PER_PARAM_TOKEN"]

DEFAULT_HOURS = (0.1, 1.0, 4.0, 24.0)
FRONTIER_COLUMNS = ("hours", "loss", "n_params", "tokens", "tokens_per_param", "d_model", "n_layers", "n_heads",
                    "aspect_ratio", "tokens_per_step", "mfu", "flops", "n_params_flops", "tokens_flops",
                    "loss_flops")


@dataclass(frozen=True)
class Exponent:
    """A log-log slope with its confidence interval at `level`."""

    value: float
    low: float
    high: float
    stderr: float
    level: float = 0.95

    def __str__(self) -> str:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):  # two points: a slope, no interval
            return f"{self.value:.3f} (no interval from two budgets)"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "stderr": self.stderr, "level": self.level}


def fit_exponent(x, y, level: float = 0.95) -> Exponent:
    """Slope of log y against log x, with a t-interval (NaN bounds with fewer than 3 points)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("an exponent needs at least two different budgets")
    if lx.size == 2:
        slope = float((ly[1] - ly[0]) / (lx[1] - lx[0]))
        return Exponent(slope, float("nan"), float("nan"), float("nan"), level)
    from scipy import stats  # imported here: scipy.stats costs ~0.3 s at `import timelaw`

    fit = stats.linregress(lx, ly)
    half = float(stats.t.ppf(0.5 + level / 2, lx.size - 2) * fit.stderr)
    return Exponent(float(fit.slope), float(fit.slope - half), float(fit.slope + half), float(fit.stderr), level)


@dataclass(frozen=True)
class Frontier:
    """Optima per budget (`best`, `rows`), exponents against time and against flops, and U-curves."""

    hours: np.ndarray
    best: tuple  # one Prediction per budget
    rows: list
    n_exponent: Exponent  # N* ~ t^a
    d_exponent: Exponent  # D* ~ t^b
    loss_exponent: Exponent  # d log L* / d log t (the loss itself, no irreducible term removed)
    width_exponent: Exponent  # d_model* ~ t^w
    depth_exponent: Exponent  # n_layers* ~ t^l
    batch_exponent: Exponent  # tokens per step* ~ t^b
    n_exponent_flops: Exponent  # the law's compute-optimal N*(C) ~ C^a over the same flops
    d_exponent_flops: Exponent
    n_exponent_vs_flops_used: Exponent  # the time-optimal N* against the flops it spends
    law: str
    profile: str
    notes: tuple = ()
    u_curves: list = field(default_factory=list, repr=False)  # [{"hours", "n_params", "loss"}]

    @property
    def text(self) -> str:
        from timelaw.plan.report import format_table

        columns = ("hours", "loss", "n_params", "tokens", "tokens_per_param", "d_model", "n_layers",
                   "aspect_ratio", "mfu", "flops", "n_params_flops", "loss_flops")
        level = f"{self.n_exponent.level:.0%}"
        lines = [
            f"time frontier on {self.profile}, law {self.law}",
            format_table(self.rows, columns),
            "",
            f"exponents against the time budget t ({level} intervals):",
            f"  N* ~ t^{self.n_exponent}    D* ~ t^{self.d_exponent}",
            f"  d_model* ~ t^{self.width_exponent}    n_layers* ~ t^{self.depth_exponent}    "
            f"batch* ~ t^{self.batch_exponent}",
            "under a FLOP budget (the law's compute-optimal split of C = 6ND):",
            f"  N* ~ C^{self.n_exponent_flops}    D* ~ C^{self.d_exponent_flops}",
            f"  the time-optimal N* against the flops it spends: N* ~ C^{self.n_exponent_vs_flops_used}",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        hours = np.asarray(self.hours, dtype=float)
        return (f"Frontier({hours.size} budgets, {hours.min():.4g} to {hours.max():.4g} h: "
                f"N* ~ t^{self.n_exponent.value:.3f}, D* ~ t^{self.d_exponent.value:.3f}; "
                f"law {self.law!r}, profile {self.profile!r})")

    def _repr_html_(self) -> str:
        from timelaw.plan.predict import _pre

        return _pre(self.text)

    def to_frame(self):
        from timelaw._optional import require

        pd = require("pandas", "Frontier.to_frame()")

        return pd.DataFrame(self.rows, columns=FRONTIER_COLUMNS)

    def to_dict(self) -> dict:
        exponents = ("n_exponent", "d_exponent", "loss_exponent", "width_exponent", "depth_exponent", "batch_exponent",
                     "n_exponent_flops", "d_exponent_flops", "n_exponent_vs_flops_used")
        return {"hours": self.hours.tolist(), "rows": self.rows, "law": self.law, "profile": self.profile,
                "notes": list(self.notes), **{e: getattr(self, e).to_dict() for e in exponents},
                "u_curves": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
                             for c in self.u_curves]}


def _row(hours: float, p: Prediction, law_choice, unique_tokens) -> dict:
    from timelaw.laws import compute_optimal

    flops = FLOPS_PER_PARAM_TOKEN * p.n_params_law * p.tokens
    split = compute_optimal(law_choice.law, flops, unique_tokens)
    c = p.config
    return {"hours": hours, "loss": p.loss, "n_params": p.n_params_law, "tokens": p.tokens,
            "tokens_per_param": p.tokens / p.n_params_law, "d_model": c.d_model, "n_layers": c.n_layers,
            "n_heads": c.n_heads, "aspect_ratio": c.d_model / c.n_layers, "tokens_per_step": p.tokens_per_step,
            "mfu": p.mfu, "flops": flops, "n_params_flops": float(split.n_params),
            "tokens_flops": float(split.tokens), "loss_flops": float(split.loss)}


def frontier(hours=None, *, minutes=None, seconds=None, profile=None, law=None,
             unique_tokens=None, setup: TrainSetup | None = None, space: SearchSpace | None = None,
             method: str = "roofline", level: float = 0.95, n_count: str | None = None, u_curve_bins: int = 40,
             **space_options) -> Frontier:
    """The optimal shape for each budget (hours, or minutes, or seconds, as a sequence; default 0.1, 1, 4
    and 24 hours) and the exponents of N*(t), D*(t) and of the optimal width and depth, against the law's
    compute-optimal exponents under a FLOP budget. Arguments as in optimize; the candidates are priced once
    for all budgets.

    N here is the count the law sees (total parameters for Chinchilla-style laws); the FLOP budget of each
    row is the C = 6 N* D* that the time-optimal run spends.
    """
    if hours is None and minutes is None and seconds is None:
        hours = DEFAULT_HOURS
    # two budgets at least: the frontier's exponents are slopes across them
    budgets = np.sort(np.atleast_1d(budget_seconds(hours=hours, minutes=minutes, seconds=seconds, at_least=2)))
    space = (space or SearchSpace()).updated(**space_options)
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    law_choice = resolve_law(law, unique_tokens, n_count)
    candidates = price_candidates(space, setup, estimator)
    best, curves = [], []
    for budget in budgets:
        result = outcome(candidates, float(budget), law_choice, unique_tokens, space.min_steps)
        ranked = result.ranked(1)
        if ranked.size == 0:
            raise ValueError(f"no candidate meets the constraints for a budget of {budget / 3600:g} h "
                             f"(at least {space.min_steps} steps, memory, parameter range)")
        cfg, best_setup = candidates.config_and_setup(int(ranked[0]))
        best.append(predict_resolved(cfg, float(budget), best_setup, estimator, law_choice, unique_tokens, method))
        n, loss = u_curve(candidates, result, u_curve_bins)
        curves.append({"hours": float(budget) / 3600, "n_params": n, "loss": loss})
    return _assemble(budgets / 3600, best, curves, law_choice, unique_tokens, device, level)


def _assemble(hours, best, curves, law_choice, unique_tokens, device, level) -> Frontier:
    from timelaw.laws import compute_optimal

    rows = [_row(float(h), p, law_choice, unique_tokens) for h, p in zip(hours, best)]
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    # The law's compute-optimal exponents over the same flops, on a dense grid so they are smooth.
    flops = np.geomspace(col["flops"].min(), col["flops"].max(), max(9, len(rows)))
    if flops[0] == flops[-1]:
        flops = flops[0] * np.array([0.5, 1.0, 2.0])
    split = compute_optimal(law_choice.law, flops, unique_tokens)
    return Frontier(
        hours=np.asarray(hours), best=tuple(best), rows=rows,
        n_exponent=fit_exponent(hours, col["n_params"], level),
        d_exponent=fit_exponent(hours, col["tokens"], level),
        loss_exponent=fit_exponent(hours, col["loss"], level),
        width_exponent=fit_exponent(hours, col["d_model"], level),
        depth_exponent=fit_exponent(hours, col["n_layers"], level),
        batch_exponent=fit_exponent(hours, col["tokens_per_step"], level),
        n_exponent_flops=fit_exponent(flops, split.n_params, level),
        d_exponent_flops=fit_exponent(flops, split.tokens, level),
        n_exponent_vs_flops_used=fit_exponent(col["flops"], col["n_params"], level),
        law=law_choice.name, profile=device.label, notes=best[0].notes, u_curves=curves,
    )
