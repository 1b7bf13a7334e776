"""No stage imports another: processing, train and serve share code only through common/."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sklearn_byoc"
STAGES = ("processing", "train", "serve")


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, absolute, relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def cross_stage_imports(stage: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / stage).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "sklearn_byoc" and len(parts) > 1 and parts[1] in STAGES \
                    and parts[1] != stage:
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_another(stage):
    assert cross_stage_imports(stage) == []


def test_the_walk_sees_a_cross_stage_import(tmp_path, monkeypatch):
    (tmp_path / "sklearn_byoc" / "serve").mkdir(parents=True)
    (tmp_path / "sklearn_byoc" / "serve" / "x.py").write_text(
        "from ..train import script_mode\nimport sklearn_byoc.processing.cli\n"
        "from sklearn_byoc.common import errors\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE",
                        tmp_path / "sklearn_byoc")
    assert cross_stage_imports("serve") == [
        "sklearn_byoc/serve/x.py imports sklearn_byoc.train",
        "sklearn_byoc/serve/x.py imports sklearn_byoc.train.script_mode",
        "sklearn_byoc/serve/x.py imports sklearn_byoc.processing.cli"]
