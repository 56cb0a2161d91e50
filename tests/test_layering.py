"""The package's structure: which layer may import which, and that what pyproject declares is what is used."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "timelaw"
# The calibration modules fit estimators, so they sit above timing/ although they live in devices/ today.
CALIBRATION = {"calibrate.py", "microbench.py", "step_design.py"}


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function, as absolute dotted names."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_imports_helper_sees_imports_inside_functions():
    module = PACKAGE / "devices" / "calibrate.py"
    assert "timelaw.timing" in _imported_modules(module)  # `from timelaw.timing import ESTIMATORS`, in a function


def test_device_descriptions_do_not_import_the_estimators():
    description_layer = [p for p in (PACKAGE / "devices").glob("*.py") if p.name not in CALIBRATION]
    assert {p.name for p in description_layer} >= {"__init__.py", "profile.py", "registry.py"}
    for path in description_layer:
        above = {m for m in _imported_modules(path)
                 if m.startswith(("timelaw.timing", "timelaw.plan", "timelaw.laws"))}
        assert not above, f"{path.name} imports {sorted(above)}"


def _imports_above(paths, above: tuple) -> dict:
    return {p.name: sorted(m for m in _imported_modules(p) if m.startswith(above)) for p in paths
            if any(m.startswith(above) for m in _imported_modules(p))}


def test_each_layer_imports_only_the_layers_below_it():
    calibration = tuple(f"timelaw.devices.{c[:-3]}" for c in CALIBRATION)
    answers = ("timelaw.plan", "timelaw.laws", "timelaw.cli", "timelaw.training")
    step = [PACKAGE / f for f in ("config.py", "params.py", "shapes.py", "memory.py", "ledger.py",
                                  "ledger_table.py", "files.py", "errors.py")]
    assert _imports_above(step, ("timelaw.timing", "timelaw.devices") + answers) == {}
    assert _imports_above(sorted((PACKAGE / "timing").glob("*.py")), calibration + answers) == {}


def test_the_package_init_of_devices_does_not_pull_in_calibration():
    imported = _imported_modules(PACKAGE / "devices" / "__init__.py")
    assert not {m for m in imported if m.split(".")[-1] in {c[:-3] for c in CALIBRATION}}


def test_scikit_learn_is_declared_only_if_imported():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].strip().lower() for d in declared}
    imported = {m.split(".")[0] for p in PACKAGE.rglob("*.py") for m in _imported_modules(p)}
    assert ("scikit-learn" in names) == ("sklearn" in imported)
    if "threadpoolctl" in imported:
        assert "threadpoolctl" in names
