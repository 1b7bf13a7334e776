# One image for the whole SageMaker life cycle of a scikit-learn model:
#   docker run IMAGE train      a training job (SageMaker passes "train" as the command)
#   docker run IMAGE serve      an endpoint or a batch transform job ("serve")
#   ContainerEntrypoint ["processing", "prepare", ...]   a processing job
#
# The base is a build argument so that a build can substitute a compatible
# image (Debian with python3 and python3-venv); both stages must use the same
# one, because the virtual environment links to the base's interpreter.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
# The scikit-learn line (major.minor) the image holds.  A model loads
# reliably only under the line that pickled it, so teams leaving AWS's
# scikit-learn images (framework versions 1.2-1, 1.4-2) build their models'
# line: 1.2, 1.4, or the default.  Each line is one hashed lock:
# requirements/sklearn-<line>.txt, or requirements.txt for the default.
ARG SKLEARN_VERSION=1.9

# ---------------------------------------------------------------------------
# builder: resolves and installs the dependencies, prepares the code.  Only
# /opt/venv, /opt/program and the stage commands leave this stage, so nothing
# pip downloads or unpacks here reaches the final image.
FROM ${BASE_IMAGE} AS builder

# Wheels only: every pinned package publishes wheels for amd64 and arm64, so
# no compiler is needed, and a missing wheel fails the build instead of
# silently compiling from source.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:

RUN python3 -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
COPY requirements/ /tmp/requirements/
# The libraries' own test suites (about 110 MB of pandas, scipy, numpy and
# scikit-learn) are never run in the image.
ARG SKLEARN_VERSION
RUN lock="/tmp/requirements/sklearn-${SKLEARN_VERSION}.txt"; \
    [ -f "$lock" ] || lock=/tmp/requirements.txt; \
    if ! grep -qF "scikit-learn==${SKLEARN_VERSION}." "$lock"; then \
      echo "SKLEARN_VERSION=${SKLEARN_VERSION} is not a scikit-learn line this image" \
           "can be built for: use 1.9 (the default) or one with a lock in" \
           "requirements/:" /tmp/requirements/sklearn-*.txt >&2; \
      exit 1; \
    fi \
 && /opt/venv/bin/python -m pip install --requirement "$lock" \
 && find /opt/venv/lib/python3*/site-packages -type d -name tests -prune \
      -exec rm -rf {} +

# The image's code is one package, sklearn_byoc, under /opt/program/lib, which a
# .pth file in the venv puts on sys.path.  Nothing else of the image is
# importable: a model's or a training script's own modules named common,
# utils, serve, train, processing, model or inference import as their own.
# The stage folders hold only their main.py.
COPY sklearn_byoc/ /opt/program/lib/sklearn_byoc/
COPY processing/main.py /opt/program/processing/main.py
COPY train/main.py /opt/program/train/main.py
COPY serve/main.py /opt/program/serve/main.py
RUN echo /opt/program/lib > "$(/opt/venv/bin/python -c \
      'import sysconfig; print(sysconfig.get_path("purelib"))')/sklearn_byoc.pth"

# The stage commands.  SageMaker starts the container with the command
# "train" or "serve" (a processing job names "processing" in its
# ContainerEntrypoint), so these must be executables on PATH.  `exec` makes
# Python replace the shell: the process SageMaker signals (SIGTERM on stop,
# scale-in or max runtime) is the stage itself, not a shell that would not
# pass the signal on.  `-u` sends every log line to CloudWatch as it is
# written.
RUN mkdir -p /opt/commands \
 && for stage in processing train serve; do \
      printf '#!/bin/sh\nexec /opt/venv/bin/python -u /opt/program/%s/main.py "$@"\n' \
        "$stage" > "/opt/commands/$stage"; \
    done \
 && printf '#!/bin/sh\nexec /opt/venv/bin/python -u -m sklearn_byoc.common.default_command "$@"\n' \
      > /opt/commands/default-stage \
 && chmod 0755 /opt/commands/*

# Byte-code compiled now, because at run time nothing may write beside the
# code: serverless endpoints run the container as an arbitrary non-root user,
# and PYTHONDONTWRITEBYTECODE is set below.  Everything is made readable (and
# directories searchable) by every user, whatever the build host's umask was.
RUN /opt/venv/bin/python -m compileall -q /opt/program \
 && chmod -R a+rX /opt/venv /opt/program

# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# SageMaker may ask the container to listen on $SAGEMAKER_BIND_TO_PORT
# (inference pipelines, multi-container endpoints) only when this label says
# the image honours it; `serve` does.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# SageMaker hosts a multi-model endpoint only on an image that says it
# implements the /models API; `serve` does when SAGEMAKER_MULTI_MODEL=true.
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true
# Which scikit-learn line the image holds, for whoever picks an image for a model.
ARG SKLEARN_VERSION
LABEL sagemaker-sklearn-byoc.scikit-learn-line=${SKLEARN_VERSION}

# PATH is spelled out in full: a base image that defines no PATH would
# otherwise leave only the venv on it.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/program /opt/program
COPY --from=builder /opt/commands/ /usr/bin/

# SageMaker hosting sends /ping and /invocations to port 8080.
EXPOSE 8080

# No ENTRYPOINT: SageMaker's "train" or "serve" must reach the shell's PATH
# lookup as the command.  A processing job passes no command, and neither does
# SDK v3's local ModelTrainer: the default picks the stage from the job's
# config files under /opt/ml (sklearn_byoc/common/default_command.py).
CMD ["default-stage"]
