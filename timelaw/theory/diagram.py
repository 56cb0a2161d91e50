"""The (alpha, beta) phase diagram: regions coloured by phase, contours of the loss exponent eta."""
from __future__ import annotations

import numpy as np

from timelaw.theory.phases import ALPHA_IV, PHASE_NAMES, phase

_COLOURS = {  # one hue per phase family, lighter for sub-phases
    "Ia": "#9ecae1", "Ib": "#c6dbef", "Ic": "#deebf7", "II": "#fdd0a2", "III": "#c7e9c0",
    "IVa": "#dadaeb", "IVb": "#bcbddc",
}


def phase_grid(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phase index (into PHASE_NAMES; -1 where alpha + beta <= 1/2) and eta on the grid alpha x beta."""
    index = np.full((len(beta), len(alpha)), -1)
    eta = np.full(index.shape, np.nan)
    for i, b in enumerate(beta):
        for j, a in enumerate(alpha):
            if a + b > 0.5:
                p = phase(a, b)
                index[i, j], eta[i, j] = PHASE_NAMES.index(p.name), p.eta
    return index, eta


def phase_diagram(alpha_range=(0.02, 1.6), beta_range=(0.02, 2.2), *, resolution: int = 240, levels=None,
                  mark=None, path=None, ax=None):
    """Draw the phase diagram; return the matplotlib Figure (saved to `path` if given).

    levels: eta values to draw as contours (default 0.1, 0.2, ..., 0.9); mark: optional (alpha, beta) to
    highlight. Needs matplotlib (the `plot` extra).
    """
    from timelaw._optional import require

    plt = require("matplotlib.pyplot", "the phase diagram")
    from matplotlib.colors import ListedColormap

    alpha = np.linspace(*alpha_range, resolution)
    beta = np.linspace(*beta_range, resolution)
    index, eta = phase_grid(alpha, beta)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 6))
    else:
        fig = ax.figure
    colours = ListedColormap(["#bdbdbd"] + [_COLOURS[n] for n in PHASE_NAMES])
    extent = (*alpha_range, *beta_range)
    ax.imshow(index + 1, origin="lower", extent=extent, aspect="auto", cmap=colours, vmin=0,
              vmax=len(PHASE_NAMES), interpolation="nearest")
    contours = ax.contour(alpha, beta, eta, levels=levels or np.arange(0.1, 1.0, 0.1), colors="k",
                          linewidths=0.6)
    ax.clabel(contours, fmt="%.1f", fontsize=7)
    _draw_boundaries(ax, alpha_range, beta_range)
    for k, name in enumerate(PHASE_NAMES):
        rows, cols = np.nonzero(index == k)
        if rows.size:
            ax.text(alpha[int(np.median(cols))], beta[int(np.median(rows))], name, ha="center", va="center",
                    fontsize=11, weight="bold")
    if mark is not None:
        ax.plot(*mark, marker="*", color="crimson", markersize=14)
    ax.set_xlim(*alpha_range)
    ax.set_ylim(*beta_range)
    ax.set_xlabel(r"$\alpha$ (data complexity)")
    ax.set_ylabel(r"$\beta$ (target complexity)")
    ax.set_title(r"PLRF compute-optimal phases; contours: loss $\propto f^{-\eta}$")
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def _draw_boundaries(ax, alpha_range, beta_range) -> None:
    a = np.linspace(*alpha_range, 200)
    style = dict(color="k", linewidth=1.2)
    ax.plot(a, 0.5 - a, **style)  # alpha + beta = 1/2: no power law below
    ax.plot([alpha_range[0], alpha_range[1]], [0.5, 0.5], **style)
    ax.plot([0.5, 0.5], [beta_range[0], beta_range[1]], **style)
    upper = a[a >= 0.5]
    ax.plot(upper, upper, **style)  # alpha = beta between II and III
    for x in (0.25, ALPHA_IV):
        ax.plot([x, x], [0.5, beta_range[1]], linestyle="--", **style)
