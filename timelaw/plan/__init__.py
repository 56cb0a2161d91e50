"""The planner: what a wall-clock budget on a device buys.

    predict_loss(cfg, hours=4)      -> Prediction: loss with a band, tokens, steps, speed, MFU, notes
    optimize(hours=4)               -> Plan: .best (a Prediction with .config and .setup), ranked .table
    frontier(hours=[0.1, 1, 4, 24]) -> Frontier: N*, D*, L* and shape per budget, exponents in t and in C
    wider_vs_deeper(n_params=1e8)   -> ShapeComparison: which shape of that size trains fastest
    cheapest(target_loss=3.0, deadline_hours=72, max_devices=8, dollars_per_device_hour=2.5)
                                    -> Prediction: the cheapest devices, shape and batch to reach a loss in time
    best_layout(cfg, setup, profile="dgx-a100-80gb", devices=64) -> Layout: the fastest tensor x pipeline x data

See docs/planner.md for the equations.
"""
from timelaw.plan.cheapest import cheapest
from timelaw.plan.frontier import Exponent, Frontier, frontier
from timelaw.plan.layout import Layout, best_layout
from timelaw.plan.predict import Prediction, predict_loss
from timelaw.plan.search import Plan, optimize
from timelaw.plan.shape import ShapeComparison, wider_vs_deeper
from timelaw.plan.space import SearchSpace

__all__ = ["Prediction", "predict_loss", "Plan", "optimize", "SearchSpace", "Frontier", "Exponent", "frontier",
           "ShapeComparison", "wider_vs_deeper", "cheapest", "best_layout", "Layout"]
