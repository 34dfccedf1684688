"""`python -m recsys_core bench`: named figures, each with its unit in the key.

Groups are listed explicitly; each lives beside the code it measures.
"""

from __future__ import annotations

import importlib
from typing import Any

# group name -> (module, function). Each function takes the db path and returns {figure_unit: value}.
GROUPS: dict[str, tuple[str, str]] = {
    "import": ("recsys_core.importers", "benchmark_import"),
    "serving": ("recsys_core.recommend", "benchmark_serving"),
    "training": ("recsys_core.train", "benchmark_training"),
    "explain": ("recsys_core.explain.benchmark", "benchmark_explain"),
}


def run_all(db: str | None, only: list[str] | None = None) -> dict[str, Any]:
    unknown = set(only or []) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown benchmark group(s) {sorted(unknown)}; choose from {sorted(GROUPS)}")
    figures: dict[str, Any] = {}
    for name, (module, function) in GROUPS.items():
        if only and name not in only:
            continue
        figures.update(getattr(importlib.import_module(module), function)(db))
    return figures
