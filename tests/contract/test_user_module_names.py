"""A user's own modules named like the image's parts import as the user's.

A model's inference code and a training script commonly hold modules named
``common``, ``utils``, ``serve``, ``train``, ``processing``, ``model`` or
``inference``.  The image's code is one package, ``sklearn_byoc``, so none of
those names is taken: ``from common.helpers import x`` finds the user's
``common/helpers.py``.
"""
from __future__ import annotations

import json

from tests.contract.test_script_mode_stage import framework_hps, write_code
from scripts.harness import run_stage, training_tree
from scripts.serve_process import ServeProcess as Server

# One module of each name, each saying whose it is.
USER_MODULES = {
    "common/__init__.py": "",
    "common/helpers.py": "OWNER = 'user common.helpers'\n",
    "utils.py": "OWNER = 'user utils'\n",
    "serve.py": "OWNER = 'user serve'\n",
    "train.py": "OWNER = 'user train'\n",
    "processing.py": "OWNER = 'user processing'\n",
    "model.py": "OWNER = 'user model'\n",
}
OWNERS = ["user common.helpers", "user utils", "user serve", "user train",
          "user processing", "user model"]

IMPORTS = """
    from common.helpers import OWNER as common_owner
    import model, processing, serve, train, utils
    OWNERS = [common_owner, utils.OWNER, serve.OWNER, train.OWNER, processing.OWNER,
              model.OWNER]
"""


def test_model_code_imports_its_own_common_utils_serve_and_train(serving_tree):
    write_code(serving_tree / "model" / "code", {
        **USER_MODULES,
        "inference.py": IMPORTS + """
    def input_fn(body, content_type):
        return body

    def predict_fn(data, model):
        return [OWNERS]
    """})
    with Server(serving_tree) as server:
        answer = server.invoke("1,2,3", "text/csv", accept="application/json")
        assert answer.status_code == 200, server.log()
    assert answer.json() == [OWNERS]  # as AWS's default output_fn writes a list


def test_training_script_imports_its_own_common_utils_serve_and_train(tmp_path):
    base = training_tree(tmp_path / "job", {"train": {"a.csv": "1\n"}},
                         framework_hps("entry.py"))
    write_code(base / "code", {**USER_MODULES, "entry.py": IMPORTS + """
    import json, os
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "owners.json"), "w") as f:
        json.dump(OWNERS, f)
    """})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    assert json.loads((base / "model" / "owners.json").read_text()) == OWNERS
