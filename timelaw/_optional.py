"""Optional dependencies: import them where they are needed, and say which extra installs a missing one.

    plt = require("matplotlib.pyplot", "--plot")   # or raises MissingDependency:
    # --plot needs matplotlib: pip install "timelaw[plot]"

The command line prints that message alone (no traceback) and exits 1; the Python API raises it as an
ImportError. `missing_dependency(err)` turns an ImportError raised deeper down into the same message.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

__all__ = ["EXTRAS", "MissingDependency", "require", "missing_dependency"]

# top-level module -> the extra of pyproject.toml that installs it
EXTRAS = {"torch": "torch", "matplotlib": "plot", "pandas": "pandas", "tokenizers": "pilot"}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def _message(root: str, feature: Optional[str]) -> str:
    extra = EXTRAS.get(root)
    install = f'pip install "timelaw[{extra}]"' if extra else f"pip install {root}"
    return f"{feature or 'this'} needs {root}, which is not installed: {install}"


def require(module: str, feature: Optional[str] = None) -> ModuleType:
    """Import and return `module`; if it (or its package) is missing, raise MissingDependency for `feature`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        root = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != root:
            raise  # the optional package is there but one of *its* dependencies is broken: show that
        raise MissingDependency(_message(root, feature), name=root) from None


def missing_dependency(err: BaseException, feature: Optional[str] = None) -> Optional[MissingDependency]:
    """The MissingDependency an ImportError stands for (an optional package not installed), else None."""
    if isinstance(err, MissingDependency):
        return err
    if isinstance(err, ImportError) and err.name and err.name.split(".")[0] in EXTRAS:
        root = err.name.split(".")[0]
        return MissingDependency(_message(root, feature), name=root)
    return None
