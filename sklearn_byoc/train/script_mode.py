"""Script mode: run the user's own training code instead of the built-in trainer.

A framework estimator (``SKLearn(entry_point="train.py", source_dir="src",
image_uri=...)``) adds ``sagemaker_program`` and ``sagemaker_submit_directory``
to the hyperparameters; their presence switches ``train`` to this module.  The
program then runs the way sagemaker-training-toolkit runs it, so a script
written for the AWS scikit-learn image runs here unchanged:

- the user hyperparameters (every key but ``sagemaker_*`` and
  ``_tuning_objective_metric``) become ``--key value`` arguments;
- the ``SM_*`` environment variables describe the job (see the README table);
- the code folder is the working directory and is on ``PYTHONPATH``;
- the program's exit code is the job's.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sklearn_byoc.common.contract import Paths, read_json_file
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.logs import LOG_LEVEL_HYPERPARAMETER
from sklearn_byoc.common.user_code.locate import CodeFolder, locate_code
from sklearn_byoc.common.user_code.program import (child_environment, finish, resolve_program,
                                                   start)
from sklearn_byoc.common.user_code.requirements import install_into_interpreter, requirement_files
from sklearn_byoc.train.hyperparameters import json_of

log = logging.getLogger("train")

PROGRAM_KEY = "sagemaker_program"
SUBMIT_DIR_KEY = "sagemaker_submit_directory"
LOG_LEVEL_KEY = LOG_LEVEL_HYPERPARAMETER
JOB_NAME_KEY = "sagemaker_job_name"
REGION_KEY = "sagemaker_region"
SAGEMAKER_PREFIX = "sagemaker_"
TUNING_METRIC_KEY = "_tuning_objective_metric"
# The sagemaker_* keys the toolkit consumes itself; every other sagemaker_* key
# is a "framework parameter" (SM_FRAMEWORK_PARAMS).
TOOLKIT_KEYS = frozenset({
    PROGRAM_KEY, SUBMIT_DIR_KEY, "sagemaker_enable_cloudwatch_metrics", REGION_KEY,
    LOG_LEVEL_KEY, JOB_NAME_KEY, "default_user_module_name", TUNING_METRIC_KEY,
    "sagemaker_s3_output",
})
DEFAULT_LOG_LEVEL = logging.INFO  # 20, the toolkit's default


def is_script_mode(raw_hyperparameters: dict) -> bool:
    return PROGRAM_KEY in raw_hyperparameters


# -- hyperparameters -------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def arg_text(raw: Any) -> str:
    """One hyperparameter as a command-line value.

    Strings lose their JSON quotes; numbers keep the text they were sent as
    (``1e-3`` stays ``1e-3``); booleans read ``True``/``False`` and JSON null
    an empty string, as the toolkit passes them; lists and objects are JSON.
    """
    value = json_of(raw)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if _is_number(value):
        return raw.strip() if isinstance(raw, str) else str(value)
    if value is None:
        return ""
    return json.dumps(value)


def env_text(value: Any) -> str:
    """One decoded value as an ``SM_*`` variable: text as it is, the rest as compact JSON
    (``true``, ``0.1``, ``[1,2]``), the toolkit's format."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def split_hyperparameters(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, sagemaker ones), both as raw text, keys in sorted order."""
    user, platform = {}, {}
    for key in sorted(raw):
        if key.startswith(SAGEMAKER_PREFIX) or key == TUNING_METRIC_KEY:
            platform[key] = raw[key]
        else:
            user[key] = raw[key]
    return user, platform


def to_args(user_hyperparameters: dict[str, Any]) -> list[str]:
    """``--key value`` pairs in key order; a one-letter key gets one dash (``-k``), as
    the toolkit does it, so ``parser.add_argument("-k")`` still matches."""
    args = []
    for key in sorted(user_hyperparameters):
        args.append(("--" if len(key) > 1 else "-") + key)
        args.append(arg_text(user_hyperparameters[key]))
    return args


# -- the program -----------------------------------------------------------------
def module_name(program: str) -> str:
    """SM_MODULE_NAME: the program without ``.py`` (the toolkit's module name)."""
    return program[:-3] if program.endswith(".py") else program


# -- the environment -------------------------------------------------------------
def num_cpus() -> int:
    """SM_NUM_CPUS as sagemaker-training-toolkit computes it: ``multiprocessing.cpu_count()``,
    every CPU of the machine, whatever the affinity mask or the cgroup quota."""
    return os.cpu_count() or 1


def num_gpus() -> int:
    """GPUs visible to the container, counted like the toolkit does (nvidia-smi)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "--list-gpus"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def channel_dirs(paths: Paths, input_config: dict[str, dict]) -> dict[str, str]:
    """Channel -> folder.  The channels are the ones inputdataconfig.json names; a
    hand-made tree without that file gets the folders under input/data."""
    names = list(input_config)
    if not names and paths.data_dir.is_dir():
        names = sorted(p.name for p in paths.data_dir.iterdir() if p.is_dir())
    return {name: str(paths.channel_dir(name)) for name in sorted(names)}


def training_env(paths: Paths, raw_hyperparameters: dict[str, Any],
                 input_config: dict[str, dict], resource_config: dict[str, Any],
                 program: str, submit_directory: str | None, code_dir: Path) -> dict[str, Any]:
    """The job as one object: SM_TRAINING_ENV, and the source of every SM_* variable.

    Keys follow the toolkit's names so code reading SM_TRAINING_ENV works here.
    """
    user_raw, platform_raw = split_hyperparameters(raw_hyperparameters)
    hyperparameters = {k: json_of(v) for k, v in user_raw.items()}
    platform = {k: json_of(v) for k, v in platform_raw.items()}
    hosts = [str(h) for h in resource_config.get("hosts") or []]
    current_host = str(resource_config.get("current_host") or (hosts[0] if hosts else "algo-1"))
    hosts = hosts or [current_host]
    log_level = platform.get(LOG_LEVEL_KEY, DEFAULT_LOG_LEVEL)
    return {
        "additional_framework_parameters": {k: v for k, v in platform.items()
                                            if k not in TOOLKIT_KEYS},
        "channel_input_dirs": channel_dirs(paths, input_config),
        "current_host": current_host,
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "hosts": hosts,
        "hyperparameters": hyperparameters,
        "input_config_dir": str(paths.input_config_dir),
        "input_data_config": input_config,
        "input_dir": str(paths.base / "input"),
        # The first host leads, as in the toolkit (the platform sorts the list).
        "is_master": current_host == hosts[0],
        "job_name": os.environ.get("TRAINING_JOB_NAME") or platform.get(JOB_NAME_KEY),
        "log_level": log_level,
        "master_hostname": hosts[0],
        "model_dir": str(paths.model_dir),
        # The toolkit reports the submit directory as it was given (an S3 URI
        # for framework estimators); without one, the code folder.
        "module_dir": submit_directory or str(code_dir),
        "module_name": module_name(program),
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus(),
        "num_gpus": num_gpus(),
        "output_data_dir": str(paths.output_data_dir),
        "output_dir": str(paths.output_dir),
        "output_intermediate_dir": str(paths.output_dir / "intermediate"),
        "resource_config": resource_config,
        "user_entry_point": program,
    }


# Each SM_* variable sagemaker-training-toolkit sets, and the key of the training
# environment (SM_TRAINING_ENV) it holds.
SM_VARIABLES = (
    ("SM_MODEL_DIR", "model_dir"), ("SM_HPS", "hyperparameters"),
    ("SM_OUTPUT_DATA_DIR", "output_data_dir"), ("SM_OUTPUT_DIR", "output_dir"),
    ("SM_OUTPUT_INTERMEDIATE_DIR", "output_intermediate_dir"), ("SM_INPUT_DIR", "input_dir"),
    ("SM_INPUT_CONFIG_DIR", "input_config_dir"), ("SM_INPUT_DATA_CONFIG", "input_data_config"),
    ("SM_RESOURCE_CONFIG", "resource_config"), ("SM_NUM_CPUS", "num_cpus"),
    ("SM_NUM_GPUS", "num_gpus"), ("SM_HOSTS", "hosts"), ("SM_CURRENT_HOST", "current_host"),
    ("SM_CURRENT_INSTANCE_TYPE", "current_instance_type"), ("SM_MODULE_NAME", "module_name"),
    ("SM_MODULE_DIR", "module_dir"), ("SM_USER_ENTRY_POINT", "user_entry_point"),
    ("SM_FRAMEWORK_PARAMS", "additional_framework_parameters"), ("SM_LOG_LEVEL", "log_level"),
    ("SM_NETWORK_INTERFACE_NAME", "network_interface_name"),
)


def env_vars(env: dict[str, Any], args: list[str]) -> dict[str, str]:
    """The SM_* variables sagemaker-training-toolkit gives a training script."""
    out = {name: env_text(env[key]) for name, key in SM_VARIABLES}
    out["SM_CHANNELS"] = env_text(sorted(env["channel_input_dirs"]))
    out["SM_TRAINING_ENV"] = env_text(env)
    out["SM_USER_ARGS"] = env_text(args)
    for name, folder in env["channel_input_dirs"].items():
        out[f"SM_CHANNEL_{name.upper()}"] = folder
    for key, value in env["hyperparameters"].items():
        out[f"SM_HP_{key.upper()}"] = env_text(value)
    # A name or value an environment cannot carry would make exec fail for
    # the whole job; drop that variable and say so.
    for name in list(out):
        if "=" in name or "\0" in name or "\0" in out[name]:
            log.warning("not setting environment variable %r: it cannot hold that name or "
                        "value", name)
            del out[name]
    return out


# -- the entry point -------------------------------------------------------------
def run_training(paths: Paths, raw_hyperparameters: dict[str, Any],
                 input_config: dict[str, dict]) -> None:
    """``train`` in script mode: fetch the code, install its requirements, run it."""
    program_name = str(json_of(raw_hyperparameters.get(PROGRAM_KEY)) or "").strip()
    if not program_name:
        raise UserError(f"{PROGRAM_KEY} is empty; it must name the script to run "
                        "(the estimator's entry_point)")
    submit = json_of(raw_hyperparameters.get(SUBMIT_DIR_KEY))
    submit = str(submit).strip() if submit is not None else ""
    region = json_of(raw_hyperparameters.get(REGION_KEY)) or None
    resource_config = read_json_file(paths.training_resourceconfig_file, default=None)
    if not isinstance(resource_config, dict):
        resource_config = {"current_host": "algo-1", "hosts": ["algo-1"]}

    code: CodeFolder = locate_code(paths, submit or None,
                                   region=str(region) if region else None)
    try:
        program = resolve_program(code.path, program_name, PROGRAM_KEY)
        args = to_args(split_hyperparameters(raw_hyperparameters)[0])
        env = training_env(paths, raw_hyperparameters, input_config, resource_config,
                           program_name, submit or None, code.path)
        child_env = child_environment(env_vars(env, args), code.path)
        for requirements in requirement_files(code.path, program.folder):
            install_into_interpreter(requirements, child_env)
        for folder in (paths.model_dir, paths.output_data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        result = start(program, args, child_env, cwd=code.path)
    finally:
        code.cleanup()
    finish(f"user script {program_name}", result, [paths.failure_file])
