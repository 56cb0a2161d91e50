"""Figures for the planner (matplotlib is imported inside each function: it is an optional extra).

Every function returns the matplotlib Figure and, given `path`, also writes it there (and closes it, so
scripts do not accumulate open figures).
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_u_curves", "plot_frontier", "plot_plan", "plot_shapes"]


def _figure(ncols: int = 1, nrows: int = 1, size=(6.0, 4.2)):
    from timelaw._optional import require

    plt = require("matplotlib.pyplot", "plotting")

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    return fig, axes.ravel()


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        import matplotlib.pyplot as plt

        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def _draw_u_curves(ax, curves, title: str):
    import matplotlib.pyplot as plt

    colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(curves), 1)))
    minima = [float(np.min(c["loss"])) for c in curves if np.size(c["loss"])]
    if minima:  # the far arms of short budgets climb steeply; keep every optimum in readable view
        ax.set_ylim(min(minima) - 0.1, max(minima) + 1.5)
    for curve, colour in zip(curves, colours):
        n, loss = np.asarray(curve["n_params"]), np.asarray(curve["loss"])
        if n.size == 0:
            continue
        ax.plot(n, loss, "-", color=colour, label=f"{curve['hours']:.3g} h")
        i = int(np.argmin(loss))
        ax.plot(n[i], loss[i], "o", color=colour)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("predicted loss (nats/token)")
    ax.set_title(title)
    ax.legend(fontsize=8, title="budget")


def plot_u_curves(curves, path=None, title: str = "best loss at each model size"):
    """Loss against model size, one curve per budget (dicts with hours, n_params, loss), optima marked."""
    fig, (ax,) = _figure()
    _draw_u_curves(ax, curves, title)
    return _finish(fig, path)


def plot_plan(plan, path=None):
    """The U-curve of one optimize() result, its best shape marked."""
    n, loss = plan.u_curve()
    return plot_u_curves([{"hours": plan.budget_seconds / 3600, "n_params": n, "loss": loss}], path,
                         title=f"{plan.budget_seconds / 3600:g} h: best loss at each model size")


def _fit_line(ax, x, exponent, y_at, style, label):
    x = np.asarray(x, float)
    anchor = np.exp(np.mean(np.log(y_at)) - exponent.value * np.mean(np.log(x)))
    ax.plot(x, anchor * x ** exponent.value, style, label=label)


def plot_frontier(front, path=None):
    """Four panels: U-curves per budget; N* and D* against time; optimal width and depth against time;
    the time-optimal N* against the flops it spends beside the law's compute-optimal N*(C)."""
    fig, axes = _figure(2, 2, size=(5.6, 4.2))
    _draw_u_curves(axes[0], front.u_curves, "U-curves: best loss at each model size")

    rows = front.rows
    hours = np.array([r["hours"] for r in rows])
    col = {k: np.array([r[k] for r in rows], float) for k in ("n_params", "tokens", "d_model", "n_layers", "flops",
                                                               "n_params_flops")}
    ax = axes[1]
    ax.loglog(hours, col["n_params"], "o", color="C0", label="N* (parameters)")
    _fit_line(ax, hours, front.n_exponent, col["n_params"], "-", f"N* ~ t^{front.n_exponent.value:.2f}")
    ax.loglog(hours, col["tokens"], "s", color="C1", label="D* (tokens)")
    _fit_line(ax, hours, front.d_exponent, col["tokens"], "--", f"D* ~ t^{front.d_exponent.value:.2f}")
    ax.set_xlabel("budget (hours)")
    ax.set_title("time-optimal size and data")
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.loglog(hours, col["d_model"], "o-", label=f"d_model* ~ t^{front.width_exponent.value:.2f}")
    ax.loglog(hours, col["n_layers"], "s-", label=f"n_layers* ~ t^{front.depth_exponent.value:.2f}")
    ax.set_xlabel("budget (hours)")
    ax.set_title("how the optimal shape moves")
    ax.legend(fontsize=8)

    ax = axes[3]
    ax.loglog(col["flops"], col["n_params"], "o-",
              label=f"time-optimal N* ~ C^{front.n_exponent_vs_flops_used.value:.2f}")
    ax.loglog(col["flops"], col["n_params_flops"], "s--",
              label=f"law's compute-optimal N* ~ C^{front.n_exponent_flops.value:.2f}")
    ax.set_xlabel("training flops C = 6 N D")
    ax.set_ylabel("parameters N")
    ax.set_title("time budget vs FLOP budget")
    ax.legend(fontsize=8)
    fig.suptitle(f"{front.law} on {front.profile}", fontsize=9)
    return _finish(fig, path)


def plot_shapes(comparison, path=None):
    """Time per parameter (relative to the fastest) against aspect ratio d_model / n_layers."""
    fig, (ax,) = _figure()
    rows = sorted(comparison.rows, key=lambda r: r["aspect_ratio"])
    ax.semilogx([r["aspect_ratio"] for r in rows], [r["relative_time"] for r in rows], "o-")
    ax.set_xlabel("aspect ratio d_model / n_layers (wider to the right)")
    ax.set_ylabel("step time per parameter, relative to fastest")
    ax.set_title(f"{comparison.n_params / 1e6:.0f}M parameters on {comparison.profile.split(' (')[0]}")
    return _finish(fig, path)
