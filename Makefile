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
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all venv tools provision test unit integration bench lint check-rules demo image cluster-up cluster-down e2e clean

all: test

$(STAMP): pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' -e ./dev
	touch $(STAMP)

venv: $(STAMP)

## make tools: Debian packages the tests run, each installed only if missing, all in one apt-get:
## prometheus, for promtool (the alert rules' tests) and a throwaway Prometheus server
## (tests/integration/test_prometheus.py starts its own on a free loopback port); its own server is never
## started (a policy-rc.d for this install, unless one exists) and is disabled at boot.
## lua5.1, to run the Argo CD health check and action (tests/unit/test_argocd.py; Argo CD runs Lua 5.1).
tools:
	@missing=; \
	command -v promtool >/dev/null && test -x /usr/bin/prometheus || missing="$$missing prometheus"; \
	command -v lua5.1 >/dev/null && command -v luac5.1 >/dev/null || missing="$$missing lua5.1"; \
	if [ -n "$$missing" ]; then \
	  set -e; policy=/usr/sbin/policy-rc.d; ours=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null; \
	    $(SUDO) chmod +x $$policy; ours=1; fi; \
	  trap '[ -z "$$ours" ] || $(SUDO) rm -f '$$policy EXIT; \
	  $(SUDO) apt-get update -qq; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  if command -v systemctl >/dev/null; then $(SUDO) systemctl disable prometheus.service 2>/dev/null || true; fi; \
	  $(SUDO) update-rc.d prometheus disable >/dev/null 2>&1 || true; \
	fi

provision: venv tools
	$(PY) -m secretrotation_dev.devcluster provision

## make test: install everything, provision the control plane if needed, run lint and all tests (on 1.37).
test: venv provision lint
	$(PY) -m pytest

unit: venv tools
	$(PY) -m pytest tests/unit

## make integration K8S=1.31: the integration suite alone, on any supported release.
integration: venv provision
	$(PY) -m pytest tests/integration

## make bench: measure the planner and the operator's own cost per rotation (not part of make test).
bench: venv provision
	$(PY) -m pytest tests/bench -s

## make check-rules: delete each rule check once; the unit suite must catch every deletion (about 4 minutes).
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

## make image: build the operator image (Dockerfile) where a Docker engine runs; elsewhere, say why not.
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  docker build -t secretrotation:$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) . ; \
	else \
	  echo "make image: no Docker engine answers here (docker info failed); build the Dockerfile where one runs" >&2; exit 1; \
	fi

e2e: venv
	./e2e/run.sh

clean: cluster-down
	rm -rf $(VENV) $(CLUSTER_DIR) .pytest_cache .mypy_cache .ruff_cache
