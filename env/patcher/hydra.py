"""hydra-core 1.0.7, patched in the installed site-packages (it comes as a wheel)."""

from __future__ import annotations

import re
from pathlib import Path

from .common import MARK, dataclass_defaults
from .engine import Project, Transform, UnknownFlavour

V107 = "1.0.7"


def detect(root: Path) -> str:
    init = root / "hydra" / "__init__.py"
    m = re.search(r'^__version__ = "([^"]+)"', init.read_text(), re.M) if init.is_file() else None
    if not m or m.group(1) != V107:
        raise UnknownFlavour(f"{root}: expected hydra {V107} (hydra/__init__.py), found {m.group(1) if m else 'none'}")
    return V107


TRANSFORMS = [
    dataclass_defaults("hydra-conf-defaults", "hydra/conf/__init__.py", {V107: 9}),
    Transform(
        name="plugins-find-spec",
        path="hydra/core/plugins.py",
        find=(
            "                    m = importer.find_module(modname)\n"
            "                    with warnings.catch_warnings(record=True) as recorded_warnings:\n"
            "                        loaded_mod = m.load_module(modname)\n"
        ),
        replace=(
            "                    spec = importer.find_spec(modname)  " + MARK + " find_module is gone in Python 3.12\n"
            "                    with warnings.catch_warnings(record=True) as recorded_warnings:\n"
            "                        loaded_mod = importlib.util.module_from_spec(spec)\n"
            "                        sys.modules[modname] = loaded_mod\n"
            "                        spec.loader.exec_module(loaded_mod)\n"
        ),
        count={V107: 1},
        why="importer.find_module/load_module were removed in Python 3.12",
    ),
    Transform(
        name="plugins-import-importlib-util",
        path="hydra/core/plugins.py",
        find="import importlib\n",
        replace="import importlib\nimport importlib.util  " + MARK + " find_spec route\n",
        count={V107: 1},
    ),
    Transform(
        name="report-print-exception-positional",
        path="hydra/_internal/utils.py",
        find="                print_exception(etype=None, value=ex, tb=final_tb)  # type: ignore\n",
        replace="                print_exception(None, ex, final_tb)  " + MARK + " etype= is gone in Python 3.10\n",
        count={V107: 1},
        why="on Python >= 3.10 every error inside a hydra app surfaced as this TypeError, hiding the real one",
    ),
]

PROJECT = Project(name="hydra", detect=detect, transforms=TRANSFORMS)
