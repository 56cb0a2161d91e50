"""Wider versus deeper: at (nearly) equal parameter count, which shape trains fastest on a device.

The loss laws give every shape with the same N the same loss, so at equal N the fastest shape is the best one
for a time budget ("Time Matters", Inbar and Sernau 2024, argue that wider wins once speed counts). Shapes
within `tolerance` of the target N are compared by seconds per step per parameter, so the small differences
in N that the grid leaves do not decide the ranking.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from timelaw.config import TrainSetup
from timelaw.plan.evaluate import evaluate, training_memory
from timelaw.plan.inputs import resolve_device, resolve_setup
from timelaw.plan.space import SearchSpace, model_grid

__all__ = ["ShapeComparison", "wider_vs_deeper"]

# Compare over every shape the grid allows, however wide or deep, unless told otherwise.
OPEN_SHAPES = dict(aspect_ratio_min=1.0, aspect_ratio_max=8192.0, n_layers=tuple(range(1, 129)))


@dataclass(frozen=True)
class ShapeComparison:
    """Shapes of about `n_params` parameters, fastest first (per parameter), on one device."""

    n_params: float
    rows: list  # dicts: d_model, n_layers, n_heads, aspect_ratio, n_params, seconds_per_step, ..., relative_time
    profile: str
    setup: TrainSetup

    @property
    def fastest(self) -> dict:
        return self.rows[0]

    @property
    def slowest(self) -> dict:
        return self.rows[-1]

    @property
    def speedup(self) -> float:
        """How many times faster per parameter the fastest shape is than the slowest."""
        return self.slowest["relative_time"]

    @property
    def wider_is_faster(self) -> bool:
        """True when time per parameter falls as the aspect ratio d_model / n_layers rises (Spearman)."""
        from scipy import stats  # imported on use: scipy.stats is slow to import

        aspect = [r["aspect_ratio"] for r in self.rows]
        return bool(stats.spearmanr(aspect, [r["relative_time"] for r in self.rows]).statistic < 0)

    def relative_to(self, d_model: int, n_layers: int) -> float:
        """Time per parameter of the shape (d_model, n_layers) relative to the fastest."""
        for r in self.rows:
            if r["d_model"] == d_model and r["n_layers"] == n_layers:
                return r["relative_time"]
        raise ValueError(f"no shape d_model={d_model}, n_layers={n_layers} among the compared shapes")

    @property
    def text(self) -> str:
        from timelaw.plan.report import format_table

        f, s = self.fastest, self.slowest
        verdict = "wider" if self.wider_is_faster else "deeper"
        by_depth = sorted(self.rows, key=lambda r: r["n_layers"])
        return "\n".join([
            f"shapes of {self.n_params / 1e6:.0f}M parameters on {self.profile}, "
            f"global batch {self.setup.global_batch_size} sequences (micro-batch {self.setup.micro_batch_size}):",
            format_table(by_depth, ("d_model", "n_layers", "n_heads", "aspect_ratio", "n_params",
                                    "seconds_per_step", "tokens_per_second", "relative_time")),
            f"fastest: d_model={f['d_model']} x {f['n_layers']} layers; slowest: d_model={s['d_model']} x "
            f"{s['n_layers']} layers is {self.speedup:.2f}x slower per parameter; {verdict} is faster here",
        ])

    def __str__(self) -> str:
        return self.text


def wider_vs_deeper(n_params: float = 1e8, *, profile=None, setup: TrainSetup | None = None,
                    tolerance: float = 0.05, space: SearchSpace | None = None, method: str = "roofline",
                    **space_options) -> ShapeComparison:
    """Every grid shape (d_model a multiple of 64, head dim 64-128, any depth) with total parameters within
    `tolerance` of `n_params`, timed on the device under `setup` (its batch), fastest per parameter first.
    Each width keeps the depth whose parameter count is closest to `n_params`, with its fastest head count."""
    space = (space or SearchSpace(**OPEN_SHAPES)).updated(
        min_params=n_params * (1 - tolerance), max_params=n_params * (1 + tolerance), **space_options)
    estimator, device = resolve_device(profile, method)
    setup = resolve_setup(setup, device)
    rows = []
    for mlp in space.mlps:
        shapes = model_grid(space, mlp)
        shapes = replace(shapes, micro_batch_size=setup.micro_batch_size, grad_accum_steps=setup.grad_accum_steps)
        fits = training_memory(shapes, setup) <= device.memory_bytes
        ev = evaluate(shapes.take(fits), setup, estimator)
        rows += _rows(ev, mlp)
    if not rows:
        raise ValueError(f"no shape of {n_params:g} +- {tolerance:.0%} parameters fits the grid and the "
                         f"device's memory")
    rows = _closest_depth(_fastest_heads(rows), n_params)
    best = min(r["seconds_per_param"] for r in rows)
    for r in rows:
        r["relative_time"] = r.pop("seconds_per_param") / best
    rows.sort(key=lambda r: r["relative_time"])
    return ShapeComparison(n_params=float(n_params), rows=rows, profile=device.label, setup=setup)


def _rows(ev, mlp: str) -> list:
    s = ev.shapes
    return [{"d_model": int(s.d_model[i]), "n_layers": int(s.n_layers[i]), "n_heads": int(s.n_heads[i]),
             "mlp": mlp, "aspect_ratio": float(s.d_model[i] / s.n_layers[i]), "n_params": int(ev.n_total[i]),
             "seconds_per_step": float(ev.seconds_per_step[i]),
             "tokens_per_second": float(ev.tokens_per_step[i] / ev.seconds_per_step[i]),
             "seconds_per_param": float(ev.seconds_per_step[i] / ev.n_total[i])}
            for i in range(ev.n_total.size)]


def _fastest_heads(rows: list) -> list:
    best = {}
    for r in rows:
        key = (r["d_model"], r["n_layers"], r["mlp"])
        if key not in best or r["seconds_per_param"] < best[key]["seconds_per_param"]:
            best[key] = r
    return list(best.values())


def _closest_depth(rows: list, n_params: float) -> list:
    best = {}
    for r in rows:
        key = (r["d_model"], r["mlp"])
        if key not in best or abs(r["n_params"] - n_params) < abs(best[key]["n_params"] - n_params):
            best[key] = r
    return list(best.values())
