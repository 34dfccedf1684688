"""recsys_core is the product's core and must never depend on the UI."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "recsys_core"


def test_core_never_imports_streamlit():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("streamlit", "views", "app")]
    assert not offenders, offenders
