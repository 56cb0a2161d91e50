"""Errors shared by the packages."""
from __future__ import annotations

__all__ = ["NotFittedError"]


class NotFittedError(ValueError, RuntimeError):
    """A step-time estimator or a loss law asked to predict before it has coefficients (fit it, or load a
    fitted one). Both a ValueError, as the laws raised, and a RuntimeError, as the estimators did."""
