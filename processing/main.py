"""``processing``: a processing job (see sklearn_byoc/processing/cli.py)."""
import sys
from pathlib import Path

# Python puts this file's folder, which holds nothing else, first on sys.path.
# The image installs the package; a clone has it beside the stage folders.
_root = Path(__file__).resolve().parent.parent
if (_root / "sklearn_byoc" / "__init__.py").is_file():
    sys.path[0] = str(_root)
else:
    del sys.path[0]

from sklearn_byoc.processing.cli import run  # noqa: E402

run(sys.argv[1:])
