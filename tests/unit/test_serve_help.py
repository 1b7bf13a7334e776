"""``serve --help``: where the model is read from, and every environment variable serve reads,
from the one table (serve/config.py ENVIRONMENT) that cannot drift from the code."""
import re
import subprocess
import sys
from pathlib import Path

from sklearn_byoc.serve.config import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
# The modules a serve process reads its environment in.
READERS = [*sorted((ROOT / "sklearn_byoc" / "serve").rglob("*.py")),
           *(ROOT / "sklearn_byoc" / "common" / name
             for name in ("contract.py", "archives.py", "logs.py"))]


def names_in_code() -> set[str]:
    found = set()
    for path in READERS:
        found |= set(re.findall(r"[\"'](SAGEMAKER_[A-Z_]+)[\"']", path.read_text()))
    return found


def serve_help() -> str:
    result = subprocess.run([sys.executable, str(ROOT / "serve" / "main.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_says_where_the_model_is_read_from():
    text = " ".join(serve_help().split())
    assert "/opt/ml/model" in text and "$SAGEMAKER_BASE_DIR/model" in text


def test_help_lists_every_environment_variable_serve_reads():
    listed = dict(re.findall(r"^  (SAGEMAKER_[A-Z_]+) +(.+)$", serve_help(), flags=re.M))
    assert listed == dict(ENVIRONMENT)
    missing = names_in_code() - set(listed)
    assert not missing, f"serve reads {sorted(missing)} but serve --help does not list them"
    stale = set(listed) - names_in_code()
    assert not stale, f"serve --help lists {sorted(stale)}, which serve never reads"
