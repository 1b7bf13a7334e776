"""The tests make test-lines runs on each older scikit-learn line (tests/conftest.py
LINE_MODULES) hold every test module that imports what reads scikit-learn's internals or
pickles (INTERNALS), so a difference between lines cannot go unrun."""
import ast
from pathlib import Path

from tests.conftest import INTERNALS, LINE_MODULES, TESTS


def internals_imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module in INTERNALS:
                wanted = INTERNALS[node.module]
                if wanted == "*" or names & set(wanted):
                    found.add(node.module)
            for name in names:  # from sklearn_byoc.common import compat: all of it
                module = f"{node.module}.{name}"
                if module in INTERNALS:
                    found.add(module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in INTERNALS}
    return found


def test_every_test_module_that_imports_the_internals_runs_on_every_line():
    missing = {}
    for folder in ("unit", "contract"):
        for path in sorted((TESTS / folder).glob("test_*.py")):
            relative = path.relative_to(TESTS).as_posix()
            used = internals_imported(path)
            if used and relative not in LINE_MODULES:
                missing[relative] = sorted(used)
    assert not missing, f"add to tests/conftest.py LINE_MODULES: {missing}"


def test_every_listed_module_exists_and_each_internal_module_is_tested():
    for relative in LINE_MODULES:
        assert (TESTS / relative).is_file(), relative
    covered = set().union(*(internals_imported(TESTS / r) for r in LINE_MODULES))
    assert covered == set(INTERNALS), set(INTERNALS) - covered


def test_the_rule_sees_an_import_of_the_internals(tmp_path):
    sample = tmp_path / "test_x.py"
    sample.write_text("def f():\n    from sklearn_byoc.common import compat\n"
                      "from sklearn_byoc.common.model_files import Feature\n")
    assert internals_imported(sample) == {"sklearn_byoc.common.compat"}
