# The two set-up commands of the README: `make run` and `make test`.
# Both create and use a virtual environment at .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.theo-installed

.PHONY: install run test test-cluster locks lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[local,dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/theo serve

test: install
	$(BIN)/python -m pytest -q

# The deployed shape on this machine (tests/cluster, docs/DEPLOYMENT.md "Cluster harness"); `make
# test` runs it too.
test-cluster: install
	$(BIN)/python -m pytest -q -m cluster tests/cluster

# Regenerate the images' lock files (locks/*.txt) after a change of pins in pyproject.toml.
locks: install
	$(BIN)/python -m serve.deploy.images

lint: install
	$(BIN)/ruff check serve engines cli tests loadtests
	$(BIN)/mypy

bench: install
	$(BIN)/python loadtests/bench_batch.py
