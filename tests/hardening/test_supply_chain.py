"""The image's dependencies are pinned, hashed locks: one per scikit-learn line.

requirements.txt (the default line) is generated from requirements.in, and
each other line's requirements/sklearn-<line>.txt from its .in file
(pip-compile --generate-hashes): every requirement in a lock is pinned with
``==`` and carries at least one sha256 hash, so pip installs exactly the
files that were locked (any hash turns on pip's hash-checking mode, for the
image and for ``make``); and every pin of a .in file is the version its lock
locks.  Every test here runs on every lock.
"""
from __future__ import annotations

import re

import pytest

from sklearn_byoc.common import compat
from tests.container_tool import default_sklearn_line, sklearn_lines
from scripts.harness import ROOT

# (source, lock) of each line, the default line first.
SETS = [(ROOT / "requirements.in", ROOT / "requirements.txt")] + [
    (lock.with_suffix(".in"), lock)
    for lock in sorted((ROOT / "requirements").glob("sklearn-*.txt"))]
IDS = [lock.relative_to(ROOT).as_posix() for _, lock in SETS]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._ -]+\])?"
                 r"==(?P<version>[A-Za-z0-9.+!_-]+)(?:\s*;\s*(?P<marker>.+))?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """Lines with their backslash continuations joined, comments and blanks dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(" ".join(current.split()))
        current = ""
    if current.strip():
        lines.append(" ".join(current.split()))
    return lines


def locked(lock) -> dict[str, tuple[str, list[str]]]:
    found = {}
    for line in logical_lines(lock.read_text()):
        requirement, *options = line.split(" --")
        options = ["--" + o for o in options]
        match = PIN.match(requirement.strip())
        assert match, f"{lock.name}: {requirement!r} is not pinned with =="
        name = canonical(match["name"])
        assert name not in found, f"{lock.name} locks {name} twice"
        found[name] = (match["version"], options)
    return found


@pytest.mark.parametrize("source, lock", SETS, ids=IDS)
def test_every_locked_requirement_is_pinned_and_hashed(source, lock):
    entries = locked(lock)
    assert len(entries) >= 10, entries
    problems = []
    for name, (version, options) in entries.items():
        hashes = [o for o in options if o.startswith("--hash")]
        if not hashes:
            problems.append(f"{name}=={version} has no --hash")
        problems += [f"{name}=={version}: bad option {o!r}" for o in options
                     if not HASH.match(o)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, lock", SETS, ids=IDS)
def test_no_requirement_line_escapes_the_lock(source, lock):
    """No editable installs, URLs, other indexes or unpinned names slip in."""
    for line in logical_lines(lock.read_text()):
        assert not line.startswith(("-e", "--editable", "-i", "--index-url",
                                    "--extra-index-url", "-f", "--find-links", "--trusted")), line
        assert "://" not in line and " @ " not in line, line
        assert PIN.match(line.split(" --")[0]), f"{line!r} is not one pinned requirement"


@pytest.mark.parametrize("source, lock", SETS, ids=IDS)
def test_the_pins_of_requirements_in_are_the_locked_versions(source, lock):
    entries = locked(lock)
    sources = logical_lines(source.read_text())
    assert sources
    problems = []
    for line in sources:
        match = PIN.match(line)
        if not match:
            problems.append(f"{source.name}: {line!r} is not pinned with ==")
            continue
        name = canonical(match["name"])
        if name not in entries:
            problems.append(f"{source.name} pins {name}, which {lock.name} does not lock")
        elif entries[name][0] != match["version"]:
            problems.append(f"{source.name} pins {name}=={match['version']} but "
                            f"{lock.name} locks {entries[name][0]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, lock", SETS, ids=IDS)
def test_each_lock_holds_the_scikit_learn_line_it_is_named_for(source, lock):
    line = default_sklearn_line() if lock.name == "requirements.txt" else \
        lock.name[len("sklearn-"):-len(".txt")]
    version = locked(lock)["scikit-learn"][0]
    assert compat.line_of(version) == line, f"{lock.name} locks scikit-learn {version}"


def test_the_code_knows_every_line_the_image_can_be_built_for():
    assert list(compat.LINES) == sklearn_lines()
    assert compat.DEFAULT_LINE == default_sklearn_line()


def test_the_lines_share_what_is_not_the_scientific_stack():
    """make locks holds every package outside scikit-learn, numpy, pandas and scipy at the
    default lock's version, so the lines differ only where they must."""
    default = {name: version for name, (version, _) in locked(SETS[0][1]).items()}
    problems = []
    for _, lock in SETS[1:]:
        for name, (version, _) in locked(lock).items():
            if name not in ("scikit-learn", "numpy", "pandas", "scipy") and \
                    name in default and default[name] != version:
                problems.append(f"{lock.name} locks {name}=={version}, requirements.txt "
                                f"{default[name]}: run make locks")
    assert not problems, "\n".join(problems)


def test_the_readme_table_gives_each_lines_locked_versions():
    """docs/image.md's table of lines: line, then the scikit-learn, numpy, pandas and scipy
    locked."""
    rows = {}
    for line in (ROOT / "docs" / "image.md").read_text().splitlines():
        match = re.match(r"^\| `(\d+\.\d+)`(?: \(default\))? \| ([^|]+) \| ([^|]+) \| "
                         r"([^|]+) \| ([^|]+) \|", line)
        if match:
            rows[match[1]] = [cell.strip() for cell in match.groups()[1:]]
    assert sorted(rows) == sorted(compat.LINES)
    for source, lock in SETS:
        entries = locked(lock)
        versions = [entries[name][0] for name in ("scikit-learn", "numpy", "pandas", "scipy")]
        assert rows[compat.line_of(versions[0])] == versions, lock.name
