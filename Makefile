# Set-up and everyday commands. Each target creates the virtual environment
# it needs, so on a fresh clone `make demo` and `make test` are all it takes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The Python versions the pins of requirements.txt install on and the tests run with.
SUPPORTED_PYTHONS := 3.11 3.12
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# The venv remembers which Python made it: another Python gets a new venv.
PYTHON_STAMP := $(VENV)/.python-$(PYTHON_VERSION)

# Every variable a target reads. One given on the command line that none reads
# (HP misspelt as HPS, say) is refused rather than silently ignored.
VARIABLES := PYTHON VENV DATA TARGET MODEL WORKDIR HP BUSY PYTEST_ARGS SKLEARN SKLEARN_LINES \
  IMAGE TEST_JOBS
UNUSED := $(strip $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),\
  $(if $(filter $(v),$(VARIABLES)),,$(v)))))
$(if $(UNUSED),$(error no target uses $(UNUSED): the variables are $(VARIABLES)))

.PHONY: demo test test-sdk3 test-busy test-fast test-lines bench image locks pipeline-tools clean

# The older scikit-learn lines the image can be built for (the Dockerfile's
# SKLEARN_VERSION; its default line's lock is requirements.txt): each one's
# lock is requirements/sklearn-<line>.txt.
OLD_LINES := 1.2 1.4

NO_PYTHON := no Python at PYTHON=$(PYTHON): install Python $(firstword $(SUPPORTED_PYTHONS)) \
  or $(lastword $(SUPPORTED_PYTHONS)) or name one with PYTHON=/path/to/python$(lastword $(SUPPORTED_PYTHONS))
WRONG_PYTHON := Python $(PYTHON_VERSION) (PYTHON=$(PYTHON)) is not supported: use \
  $(firstword $(SUPPORTED_PYTHONS)) or $(lastword $(SUPPORTED_PYTHONS)) \
  (make $(or $(MAKECMDGOALS),demo) PYTHON=python$(lastword $(SUPPORTED_PYTHONS)))

$(PYTHON_STAMP):
	$(if $(PYTHON_VERSION),,$(error $(NO_PYTHON)))
	$(if $(filter $(PYTHON_VERSION),$(SUPPORTED_PYTHONS)),,$(error $(WRONG_PYTHON)))
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	touch $@

$(BIN)/.runtime: $(PYTHON_STAMP) requirements.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

# Tools installed beside the image's packages may not move its pins: the pins
# (without hashes) constrain their install.
$(VENV)/pins.txt: $(BIN)/.runtime
	sed -e 's/ *\\$$//' -e '/^ *--hash/d' -e '/^ *#/d' requirements.txt > $@

$(BIN)/.pipeline: $(VENV)/pins.txt requirements-pipeline.txt
	$(BIN)/pip install --quiet -r requirements-pipeline.txt -c $(VENV)/pins.txt
	touch $@

$(BIN)/.dev: $(VENV)/pins.txt requirements-dev.txt requirements-pipeline.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt -c $(VENV)/pins.txt
	touch $(BIN)/.pipeline $@

# One virtual environment per older scikit-learn line, made like .venv from
# that line's lock, for the unit and contract suites.
.venv-sklearn%/bin/.dev: requirements/sklearn-%.txt requirements-dev.txt
	$(PYTHON) -m venv .venv-sklearn$*
	.venv-sklearn$*/bin/pip install --quiet --require-hashes -r requirements/sklearn-$*.txt
	sed -e 's/ *\\$$//' -e '/^ *--hash/d' -e '/^ *#/d' requirements/sklearn-$*.txt \
	  > .venv-sklearn$*/pins.txt
	.venv-sklearn$*/bin/pip install --quiet -r requirements-dev.txt -c .venv-sklearn$*/pins.txt
	touch $@

## demo: prepare -> train -> evaluate -> batch transform -> serve, on the bundled
## data or on yours: make demo DATA=path/to/my.csv TARGET=label, with any
## hyperparameter: HP="ignore_columns=patient_id max_depth=6"; MODEL=random_forest;
## WORKDIR=work/mine
demo: $(BIN)/.runtime
	$(BIN)/python scripts/demo.py $(if $(DATA),--data "$(DATA)") $(if $(TARGET),--target "$(TARGET)") \
	  $(if $(MODEL),--model "$(MODEL)") $(if $(WORKDIR),--workdir "$(WORKDIR)") \
	  $(if $(HP),--hyperparameters '$(HP)')

## pipeline-tools: what pipeline.py needs (the SageMaker Python SDK v2, moto's S3 server)
pipeline-tools: $(BIN)/.pipeline

## test: the whole test suite (container and SDK tests need podman/buildah; see
## docs/testing.md): the independent tests on TEST_JOBS processes, then the ones that
## must run alone (marked serial in tests/conftest.py)
TEST_JOBS ?= 2
test: $(BIN)/.dev
	$(BIN)/python -m pytest -m "not serial" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS)
	$(MAKE) test-sdk3

# SDK v3 cannot share a venv with the v2 the other SDK tests use.
.venv-sdk3/bin/.sdk3: requirements-sdk3.txt
	$(PYTHON) -m venv .venv-sdk3
	.venv-sdk3/bin/pip install --quiet -r requirements-sdk3.txt
	touch $@

## test-sdk3: the SageMaker Python SDK v3 in local container mode driving the image
## (tests/sdk3, in .venv-sdk3; one test at a time: v3 serves on the fixed port 8080)
test-sdk3: .venv-sdk3/bin/.sdk3
	.venv-sdk3/bin/python -m pytest tests/sdk3 $(PYTEST_ARGS)

## test-busy: the whole suite beside one CPU-bound process at normal priority,
## as on a shared CI machine (BUSY=2 starts two)
BUSY ?= 1
test-busy: $(BIN)/.dev
	@pids=; for i in $$(seq $(BUSY)); do \
	  $(BIN)/python -c 'while True: pass' & pids="$$pids $$!"; done; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	echo "== $(BUSY) busy process(es):$$pids"; \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: unit and contract tests only
test-fast: $(BIN)/.dev
	$(BIN)/python -m pytest tests/unit tests/contract

## test-lines: on every older scikit-learn line (one venv each, .venv-sklearn<line>), the
## tests of what can differ between lines (marked lines in tests/conftest.py);
## SKLEARN_LINES=1.2 picks some
SKLEARN_LINES ?= $(OLD_LINES)
test-lines: $(foreach line,$(SKLEARN_LINES),.venv-sklearn$(line)/bin/.dev)
	for line in $(SKLEARN_LINES); do \
	  echo "== scikit-learn $$line line: the tests of what differs between lines"; \
	  .venv-sklearn$$line/bin/python -m pytest -m lines -n $(TEST_JOBS) --dist loadfile \
	    tests/unit tests/contract || exit 1; \
	done

## bench: serve against the previous serve and the classic predictor, side by side
## (about 25 min; needs wrk and git)
bench: $(BIN)/.dev
	$(BIN)/python benchmarks/run.py

## image: build the image as IMAGE (docker when a daemon runs, else podman;
## where no registry answers, on a stand-in Debian base); SKLEARN=1.2 builds
## the scikit-learn 1.2 line, tagged ...:sklearn1.2 unless IMAGE is given
SKLEARN ?=
IMAGE ?= localhost/sagemaker-sklearn-byoc:$(if $(SKLEARN),sklearn$(SKLEARN),latest)
image:
	$(PYTHON) -m tests.container_tool build --tag $(IMAGE) \
	  $(if $(SKLEARN),--sklearn-version $(SKLEARN))

## locks: regenerate the older lines' locks from requirements/sklearn-<line>.in
## (needs pip-compile from pip-tools); what they share with the default line
## is held at requirements.txt's versions
locks:
	{ echo "# requirements.txt's pins that every line shares (written by make locks)"; \
	  sed -e 's/ *\\$$//' -e '/^ *--hash/d' -e '/^ *#/d' -e '/^$$/d' requirements.txt \
	  | grep -v -E '^(scikit-learn|numpy|pandas|scipy)=='; } > requirements/shared.constraints
	for line in $(OLD_LINES); do \
	  pip-compile --quiet --generate-hashes --strip-extras --no-header --no-emit-find-links \
	    --no-emit-index-url -c requirements/shared.constraints \
	    -o requirements/sklearn-$$line.txt requirements/sklearn-$$line.in || exit 1; \
	done

clean:
	rm -rf work .pytest_cache $(VENV)
