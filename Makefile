# Everything a fresh Debian bookworm machine needs is installed by these targets:
# a virtualenv in .venv, and (once per release, cached in ~/.cache/secretrotation) the
# control plane, built from Go modules. K8S picks the release: 1.37 (default) or 1.31.
PYTHON ?= python3
K8S    ?= 1.37
export SECRETROTATION_KUBERNETES := $(K8S)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CLUSTER_DIR := .cluster

.PHONY: all venv provision test unit integration bench lint check-rules demo cluster-up cluster-down e2e clean

all: test

$(STAMP): pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -e ./dev
	touch $(STAMP)

venv: $(STAMP)

provision: venv
	$(PY) -m secretrotation_dev.devcluster provision

## make test: install everything, provision the control plane if needed, run lint and all tests (on 1.37).
test: venv provision lint
	$(PY) -m pytest

unit: venv
	$(PY) -m pytest tests/unit

## make integration K8S=1.31: the integration suite alone, on any supported release.
integration: venv provision
	$(PY) -m pytest tests/integration

## make bench: measure the planner and the operator's own cost per rotation (not part of make test).
bench: venv provision
	$(PY) -m pytest tests/bench -s

## make check-rules: delete each rule check once; the unit suite must catch every deletion (about 2 minutes).
check-rules: venv
	$(PY) tools/delete_each_check.py

lint: venv
	$(VENV)/bin/ruff check operator dev tests e2e tools
	$(VENV)/bin/ruff format --check operator dev tests e2e tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

cluster-up: venv
	$(PY) -m secretrotation_dev.devcluster up --state-dir $(CLUSTER_DIR)

cluster-down:
	@if [ -x $(PY) ]; then $(PY) -m secretrotation_dev.devcluster down --state-dir $(CLUSTER_DIR); fi

demo: venv
	$(PY) -m secretrotation_dev.demo

e2e: venv
	./e2e/run.sh

clean: cluster-down
	rm -rf $(VENV) $(CLUSTER_DIR) .pytest_cache .mypy_cache .ruff_cache
