"""What ``serve`` must never do, whatever a caller sends.

* No debugger or console: Werkzeug's console and debugger resources are 404,
  even with FLASK_DEBUG=1 in the environment, and an error inside the model's
  code answers a plain-text 500 with no traceback or HTML page.
* Request bodies are never unpickled: nothing under sklearn_byoc/serve/ calls an
  unpickling function or imports a pickle module, and a pickle payload that
  would leave a file behind when loaded is refused under every content type
  while the file never appears.
* Only the model folder is read for the model: loading it opens no file
  outside that folder other than Python's own modules.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.contract.hosting import add_inference_code
from tests.hardening.endpoint import ROW, check_caller_error, endpoint_tree
from scripts.harness import ROOT
from scripts.serve_process import ServeProcess as Server

SERVE = ROOT / "sklearn_byoc" / "serve"

FAILING_INFERENCE = '''\
"""Test model: predict_fn fails with an error whose text is a secret."""


def predict_fn(data, model):
    raise RuntimeError("the predict_fn of this test model always fails")
'''


@pytest.fixture(scope="module")
def endpoint(trained_model, tmp_path_factory):
    base = endpoint_tree(trained_model, tmp_path_factory.mktemp("safety"))
    add_inference_code(base / "model", FAILING_INFERENCE)
    env = {"FLASK_DEBUG": "1", "FLASK_ENV": "development", "WERKZEUG_DEBUG_PIN": "off"}
    with Server(base, env, workers=1) as server:
        yield server


@pytest.mark.parametrize("path", [
    "/console", "/console?__debugger__=yes&cmd=resource&f=debugger.js",
    "/?__debugger__=yes&cmd=resource&f=style.css", "/invocations?__debugger__=yes&cmd=printpin",
    "/static/x", "/admin", "/debug", "/.env", "/../../etc/passwd", "/models",
])
def test_no_debugger_console_or_other_route(endpoint, path):
    answer = requests.get(endpoint.url + path, timeout=10)
    assert answer.status_code in (404, 405), (path, answer.status_code)
    check_caller_error(answer.status_code, answer.headers.get("Content-Type"), answer.text, path)
    assert "debugger" not in answer.text.lower() and "werkzeug" not in answer.text.lower()


def test_an_internal_error_answers_plain_text_without_a_traceback(endpoint):
    answer = requests.post(endpoint.url + "/invocations", data=ROW,
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 500
    assert answer.headers["Content-Type"].startswith("text/plain")
    for leak in ("Traceback", 'File "', "<html", "__debugger__", "line "):
        assert leak not in answer.text, answer.text
    assert "predict_fn" in answer.text  # the message still says what failed
    # The traceback is in the log, where the endpoint's owner reads it.
    assert "Traceback" in endpoint.log()


# -- never unpickle a request ------------------------------------------------------------
UNPICKLING = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
              ("joblib", "load"), ("np", "load"), ("numpy", "load"), ("pd", "read_pickle"),
              ("pandas", "read_pickle"), ("marshal", "load"), ("marshal", "loads"),
              ("cloudpickle", "load"), ("cloudpickle", "loads"), ("dill", "load"),
              ("dill", "loads"), ("shelve", "open")}
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "marshal", "shelve"}


def _no_pickle(call: ast.Call) -> bool:
    """np.load(..., allow_pickle=False): reads arrays, never pickles."""
    return any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
               and k.value.value is False for k in call.keywords)


def test_serve_source_never_unpickles_or_evaluates_anything():
    found = []
    for path in sorted(SERVE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [f"{where} imports {a.name}" for a in node.names
                          if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where} imports from {node.module}")
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                        and (func.value.id, func.attr) in UNPICKLING \
                        and not (func.attr == "load" and func.value.id in ("np", "numpy")
                                 and _no_pickle(node)):
                    found.append(f"{where} calls {func.value.id}.{func.attr}")
                if isinstance(func, ast.Name) and func.id in ("eval", "exec", "__import__"):
                    found.append(f"{where} calls {func.id}")
                for keyword in node.keywords:
                    if keyword.arg == "allow_pickle" and not (
                            isinstance(keyword.value, ast.Constant) and not keyword.value.value):
                        found.append(f"{where} passes allow_pickle")
    assert not found, "\n".join(found)
    # The one unpickling call of the model path reads the model folder's own file.
    source = (ROOT / "sklearn_byoc" / "common" / "model_files.py").read_text()
    assert source.count("joblib.load(") == 1 and "model = joblib.load(path)" in source
    assert "path = model_file(folder)" in source


class LeavesAFile:
    """Unpickling this object creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("content_type", [
    "application/python-pickle", "application/x-pickle", "application/x-npy",
    "application/octet-stream", "text/csv", "application/json", "application/jsonlines",
    None])
def test_a_pickle_payload_is_refused_and_never_loaded(trained_model, tmp_path, content_type,
                                                      builtin_endpoint):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(LeavesAFile(marker))
    headers = {"Content-Type": content_type} if content_type else {}
    answer = requests.post(builtin_endpoint.url + "/invocations", data=payload,
                           headers=headers, timeout=30)
    check_caller_error(answer.status_code, answer.headers.get("Content-Type"), answer.text,
                       content_type)
    assert not marker.exists()


@pytest.fixture(scope="module")
def builtin_endpoint(trained_model, tmp_path_factory):
    base = endpoint_tree(trained_model, tmp_path_factory.mktemp("pickle"))
    with Server(base, workers=1) as server:
        yield server


# -- the model comes from the model folder alone -------------------------------------------
RECORD_OPENS = r'''
import json, os, sys
from pathlib import Path
opened = []

def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.abspath(os.fsdecode(args[0])))

sys.path.insert(0, sys.argv[1])
sys.addaudithook(hook)
from sklearn_byoc.serve.invocation import ModelService
service = ModelService(Path(sys.argv[2]))
assert service.model.schema is not None
print("OPENED " + json.dumps(opened))
'''


def test_loading_the_model_reads_only_the_model_folder(trained_model, tmp_path):
    base = endpoint_tree(trained_model, tmp_path / "endpoint")
    model_dir = (base / "model").resolve()
    # Decoys where a careless loader might look: the working folder and the tree.
    for decoy in (tmp_path, base):
        (decoy / "model.joblib").write_bytes(b"decoy")
        (decoy / "metadata.json").write_text("{}")
    result = subprocess.run([sys.executable, "-c", RECORD_OPENS, str(ROOT), str(model_dir)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)})
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("OPENED "))
    opened = [Path(p) for p in json.loads(line[len("OPENED "):])]
    python_homes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    allowed = [*python_homes, Path("/usr"), Path("/proc"), Path("/sys"), Path("/dev"),
               Path("/etc")]

    def is_code(path: Path) -> bool:
        return path.suffix in (".py", ".pyc", ".so", ".pth") or "__pycache__" in path.parts

    outside = [str(p) for p in opened
               if not p.resolve().is_relative_to(model_dir)
               and not any(p.resolve().is_relative_to(a) for a in allowed)
               and not (p.resolve().is_relative_to(ROOT) and is_code(p))]
    assert not outside, outside
    read_for_model = {p.name for p in opened if p.resolve().is_relative_to(model_dir)}
    assert {"model.joblib", "metadata.json"} <= read_for_model
