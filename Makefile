# Set-up and everyday commands. Each target creates the virtual environment
# it needs, so on a fresh clone `make demo` and `make test` are all it takes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast bench image clean

$(BIN)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	touch $@

# The test tools may not move the image's pins: the pins (without hashes)
# constrain their install.
$(BIN)/.dev: $(BIN)/.runtime requirements-dev.txt
	sed -e 's/ *\\$$//' -e '/^ *--hash/d' -e '/^ *#/d' requirements.txt > $(VENV)/pins.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt -c $(VENV)/pins.txt
	touch $@

## demo: processing -> train -> batch transform -> serve, on the bundled data
demo: $(BIN)/.runtime
	$(BIN)/python scripts/demo.py

## test: the whole test suite (container and SDK tests need podman/buildah; see README)
test: $(BIN)/.dev
	$(BIN)/python -m pytest

## test-fast: unit and contract tests only
test-fast: $(BIN)/.dev
	$(BIN)/python -m pytest tests/unit tests/contract

## bench: serve against the previous serve and the classic predictor, side by side
## (about 12 min; needs wrk and git)
bench: $(BIN)/.dev
	$(BIN)/python benchmarks/run.py

## image: build the image as IMAGE (docker when a daemon runs, else podman;
## where no registry answers, on a stand-in Debian base)
IMAGE ?= localhost/sagemaker-sklearn-byoc:latest
image:
	$(PYTHON) -m tests.container_tool build --tag $(IMAGE)

clean:
	rm -rf work .pytest_cache
