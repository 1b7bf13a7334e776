"""The image's dependencies are a pinned, hashed lock.

requirements.txt is generated from requirements.in (pip-compile
--generate-hashes): every requirement in it is pinned with ``==`` and carries
at least one sha256 hash, so pip installs exactly the files that were locked
(any hash turns on pip's hash-checking mode, for the image and for ``make``);
and every pin of requirements.in is the version requirements.txt locks.
"""
from __future__ import annotations

import re

from tests.sagemaker_tree import ROOT

LOCK = ROOT / "requirements.txt"
SOURCE = ROOT / "requirements.in"
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


def locked() -> dict[str, tuple[str, list[str]]]:
    found = {}
    for line in logical_lines(LOCK.read_text()):
        requirement, *options = line.split(" --")
        options = ["--" + o for o in options]
        match = PIN.match(requirement.strip())
        assert match, f"requirements.txt: {requirement!r} is not pinned with =="
        name = canonical(match["name"])
        assert name not in found, f"requirements.txt locks {name} twice"
        found[name] = (match["version"], options)
    return found


def test_every_locked_requirement_is_pinned_and_hashed():
    entries = locked()
    assert len(entries) >= 10, entries
    problems = []
    for name, (version, options) in entries.items():
        hashes = [o for o in options if o.startswith("--hash")]
        if not hashes:
            problems.append(f"{name}=={version} has no --hash")
        problems += [f"{name}=={version}: bad option {o!r}" for o in options
                     if not HASH.match(o)]
    assert not problems, "\n".join(problems)


def test_no_requirement_line_escapes_the_lock():
    """No editable installs, URLs, other indexes or unpinned names slip in."""
    for line in logical_lines(LOCK.read_text()):
        assert not line.startswith(("-e", "--editable", "-i", "--index-url",
                                    "--extra-index-url", "-f", "--find-links", "--trusted")), line
        assert "://" not in line and " @ " not in line, line
        assert PIN.match(line.split(" --")[0]), f"{line!r} is not one pinned requirement"


def test_the_pins_of_requirements_in_are_the_locked_versions():
    entries = locked()
    sources = logical_lines(SOURCE.read_text())
    assert sources
    problems = []
    for line in sources:
        match = PIN.match(line)
        if not match:
            problems.append(f"requirements.in: {line!r} is not pinned with ==")
            continue
        name = canonical(match["name"])
        if name not in entries:
            problems.append(f"requirements.in pins {name}, which requirements.txt does not lock")
        elif entries[name][0] != match["version"]:
            problems.append(f"requirements.in pins {name}=={match['version']} but "
                            f"requirements.txt locks {entries[name][0]}")
    assert not problems, "\n".join(problems)
