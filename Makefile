# textless-stack. `make help` lists the targets.
#
# Every version comes from env/pins.toml (through env/pins.py); nothing is pinned here.
# All build scratch lives under $(BUILD_DIR); `make clean` removes it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUILD_DIR ?= .build
VENV ?= .venv
# Any Python >= 3.11 (tomllib) runs the stdlib tools before an environment exists.
HOST_PYTHON ?= $(shell command -v python3)

TOOLS := $(BUILD_DIR)/tools
UV := $(TOOLS)/bin/uv
PINS := env/pins.py

$(BUILD_DIR)/pins.mk: env/pins.toml env/pins.py
	@mkdir -p $(BUILD_DIR)
	@$(HOST_PYTHON) $(PINS) make-vars >$@
-include $(BUILD_DIR)/pins.mk

# The interpreter the stack targets: $(PYTHON_STACK), else pyenv's, else python3.10 on PATH.
PYTHON_STACK ?= $(shell p=$$(pyenv prefix $(PIN_PYTHON) 2>/dev/null) && echo $$p/bin/python$(PIN_PYTHON) || command -v python$(PIN_PYTHON))

# The image variant (env/pins.toml [variants]); the local environment uses its lock too.
VARIANT ?= $(PIN_DEFAULT_VARIANT)
RUNTIME_LOCK = env/locks/runtime-$(VARIANT).txt

# Local upstream sources (optional): FAIRSEQ_SRC=/path/to/fairseq TEXTLESSLIB_SRC=/path/to/textlesslib
export FAIRSEQ_SRC TEXTLESSLIB_SRC

.PHONY: help
help: ## this list
	@grep -hE '^[a-zA-Z0-9_%/.-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(UV): $(BUILD_DIR)/pins.mk
	$(HOST_PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(PIN_UV)
	@touch $@

.PHONY: tools
tools: $(UV) ## bootstrap the build tools (uv) under $(BUILD_DIR)

.PHONY: lock
lock: $(UV) ## re-resolve env/locks/*.txt from env/pins.toml (hash-locked, linux x86_64, Python 3.10, per variant)
	time $(HOST_PYTHON) env/lock.py $(UV)

# --- upstream sources: fetch (pinned commit | local dir | stand-in) and patch; no build -----
SRC := $(BUILD_DIR)/src
WHEELS := $(BUILD_DIR)/wheels
BUILD_ENV = UV=$(abspath $(UV)) PYTHON=$(PYTHON_STACK) TOOL_PYTHON=$(HOST_PYTHON)
SOURCE_INPUTS := $(UV) env/sources.py env/build-wheel.sh $(wildcard env/patcher/*.py) env/pins.toml

$(SRC)/fairseq.stamp: $(SOURCE_INPUTS)
	$(BUILD_ENV) env/build-wheel.sh fairseq $(SRC)
	@touch $@

# textlesslib has no stand-in: exit 3 from build-wheel.sh means "not available", recorded, not fatal.
$(SRC)/textlesslib.stamp: $(SOURCE_INPUTS)
	@rc=0; $(BUILD_ENV) env/build-wheel.sh textlesslib $(SRC) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "textlesslib: SOURCE NOT AVAILABLE: its tests will skip (pass TEXTLESSLIB_SRC=...)"; \
	rm -f $(SRC)/textlesslib-patch-report.json; elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@touch $@

.PHONY: sources
sources: $(SRC)/fairseq.stamp $(SRC)/textlesslib.stamp ## fetch and patch fairseq and textlesslib into .build/src, building nothing (what `make image` takes)

# --- upstream wheels, from those sources (for the local environments) --------------------
$(WHEELS)/fairseq.stamp: $(SRC)/fairseq.stamp
	SKIP_FETCH=1 $(BUILD_ENV) env/build-wheel.sh fairseq $(SRC) $(WHEELS)
	@touch $@

$(WHEELS)/textlesslib.stamp: $(SRC)/textlesslib.stamp
	@rc=0; SKIP_FETCH=1 $(BUILD_ENV) env/build-wheel.sh textlesslib $(SRC) $(WHEELS) || rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "textlesslib: no source, no wheel"; elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@touch $@

.PHONY: wheels
wheels: $(WHEELS)/fairseq.stamp $(WHEELS)/textlesslib.stamp ## build the fairseq and textlesslib wheels from `make sources` (for `make venv`)

# --- the local Python 3.10 environment ----------------------------------------------
$(VENV)/.stamp: $(UV) $(RUNTIME_LOCK) env/locks/dev.txt $(WHEELS)/fairseq.stamp $(WHEELS)/textlesslib.stamp entrypoints/pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON_STACK) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --require-hashes $(RUNTIME_LOCK) env/locks/dev.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps $(WHEELS)/*.whl
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps --editable entrypoints
	PYTHONPATH=env $(HOST_PYTHON) -m patcher hydra $$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
	  --report $(SRC)/hydra-patch-report.json
	$(HOST_PYTHON) env/record.py $(SRC) --variant $(VARIANT) >$(VENV)/textless-stack-sources.json
	@touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## build the local Python 3.10 stack in $(VENV) (FAIRSEQ_SRC=/TEXTLESSLIB_SRC= for local sources)

# Small environments that prove the patched fairseq and hydra on newer Pythons.
$(BUILD_DIR)/py%/.stamp: $(UV) env/pins.toml $(WHEELS)/fairseq.stamp
	@if ! p=$$(pyenv prefix $* 2>/dev/null || dirname $$(dirname $$(command -v python$*))); then \
	  echo "python$* not found: its checks will skip"; mkdir -p $(@D); touch $@; exit 0; fi; \
	rm -rf $(@D) && $(UV) venv --quiet --python $$p/bin/python$* $(@D) && \
	$(HOST_PYTHON) $(PINS) check-requirements $* >$(@D)/requirements.txt && \
	VIRTUAL_ENV=$(@D) $(UV) pip install --quiet -r $(@D)/requirements.txt && \
	purelib=$$($(@D)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	rm -rf $(@D)/pristine && mkdir -p $(@D)/pristine && cp -r $$purelib/hydra $(@D)/pristine/ && \
	PYTHONPATH=env $(HOST_PYTHON) -m patcher hydra $$($(@D)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	@touch $@

.PHONY: check-pythons
check-pythons: $(foreach v,$(PIN_CHECK_PYTHONS),$(BUILD_DIR)/py$(v)/.stamp) ## environments for the Python 3.11/3.12 checks

# The plain modern environment (no fairseq, omegaconf or hydra) that `export --format hf` output must load in.
EXPORT_CHECK := $(BUILD_DIR)/export-check
$(EXPORT_CHECK)/.stamp: $(UV) env/locks/export-check.txt
	@if ! p=$$(pyenv prefix $(PIN_EXPORT_CHECK_PYTHON) 2>/dev/null || dirname $$(dirname $$(command -v python$(PIN_EXPORT_CHECK_PYTHON)))); then \
	  echo "python$(PIN_EXPORT_CHECK_PYTHON) not found: the modern-environment export check will skip"; mkdir -p $(@D); touch $@; exit 0; fi; \
	rm -rf $(@D) && $(UV) venv --quiet --python $$p/bin/python$(PIN_EXPORT_CHECK_PYTHON) $(@D) && \
	VIRTUAL_ENV=$(@D) $(UV) pip sync --quiet --require-hashes env/locks/export-check.txt
	@touch $@

.PHONY: check-export
check-export: $(EXPORT_CHECK)/.stamp ## the Python 3.12 + newest transformers environment exports are loaded in

# Models persist in the user's cache across runs; outputs land in $(BUILD_DIR)/demo, owned by the caller.
MODELS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/textless-stack/models

.PHONY: demo
demo: image ## main job: build the default image, extract features and units from the bundled sample speech
	@mkdir -p $(BUILD_DIR)/demo $(MODELS_DIR)
	export $(ENGINE); trap 'docker/engine.sh stop $(DOCKER_STATE)' EXIT; \
	docker run --rm --read-only --tmpfs /tmp --user $$(id -u):$$(id -g) \
	  -v $(abspath $(BUILD_DIR))/demo:/out -v $(MODELS_DIR):/models -e TEXTLESS_STACK_MODELS=/models \
	  $(IMAGE) demo --output /out
	@echo "outputs: $(BUILD_DIR)/demo"

.PHONY: demo-local
demo-local: venv ## the same job in the local Python environment (no Docker)
	$(VENV)/bin/textless-stack demo --output $(BUILD_DIR)/demo-local

# --- images ------------------------------------------------------------------------------
DOCKER_STATE := $(BUILD_DIR)/docker
IMAGE_REPO ?= textless-stack
IMAGE = $(IMAGE_REPO):$(VARIANT)
# Registry models to bake into the image (default none: models live in a bound cache).
BAKE_MODELS ?=
export BAKE_MODELS
# An extra CA bundle for TLS-intercepting proxies (a build secret, never in the image).
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
ENGINE = DOCKER_HOST=$$(docker/engine.sh start $(DOCKER_STATE))

.PHONY: image
image: sources ## build the image for VARIANT (default from env/pins.toml) with Docker, from `make sources`
	@mkdir -p $(DOCKER_STATE)
	export $(ENGINE) && CA_BUNDLE=$(CA_BUNDLE) time docker/build.sh $(VARIANT) $(IMAGE) $(DOCKER_STATE) $(SRC)

# --- SIF ---------------------------------------------------------------------------------
SIF = $(BUILD_DIR)/sif/textless-stack_$(VARIANT).sif
APPTAINER_STATE := $(BUILD_DIR)/apptainer

$(SIF): $(DOCKER_STATE)/image-$(VARIANT).id apptainer/textless-stack.def.in apptainer/render_def.py apptainer/build.sh
	export $(ENGINE) && time apptainer/build.sh $(IMAGE) $@ $(APPTAINER_STATE)

$(DOCKER_STATE)/image-$(VARIANT).id: image

.PHONY: sif
sif: image $(SIF) ## build the Apptainer SIF for VARIANT (.build/sif/) from its Docker image

# Two builds of one commit, the second with no build cache at all, compared file by file (env/repro.py).
REPRO_DIR := $(BUILD_DIR)/repro

.PHONY: repro-check
repro-check: sif ## rebuild image and SIF with no build cache and compare their files, freeze, patch reports and manifest (~25 min)
	export $(ENGINE); trap 'docker/engine.sh stop $(DOCKER_STATE)' EXIT; \
	CA_BUNDLE=$(CA_BUNDLE) env/repro-check.sh $(VARIANT) $(IMAGE) $(SIF) $(REPRO_DIR) $(SRC) $(APPTAINER_STATE)

.PHONY: engine-stop
engine-stop: ## stop the private Docker engine the harness started (if any)
	docker/engine.sh stop $(DOCKER_STATE)

# --- tests -----------------------------------------------------------------------------
PYTEST_ARGS ?=

# The unit tests need no build: pytest and hadolint (env/locks/dev.txt) in a small environment of the
# stack's interpreter (else the host's), our stdlib tools (env/) and the package's pure modules from the tree.
UNIT_ENV := $(BUILD_DIR)/unit-env
$(UNIT_ENV)/.stamp: $(UV) env/locks/dev.txt
	$(UV) venv --quiet --allow-existing --python $(or $(PYTHON_STACK),$(HOST_PYTHON)) $(UNIT_ENV)
	VIRTUAL_ENV=$(UNIT_ENV) $(UV) pip sync --quiet --require-hashes env/locks/dev.txt
	@touch $@

.PHONY: test-unit
test-unit: $(UNIT_ENV)/.stamp ## the unit tests alone, in seconds: no build, no torch (tests/unit; PYTEST_ARGS=...)
	PYTHONPATH=entrypoints $(UNIT_ENV)/bin/python -m pytest -c tests/pytest.ini $(PYTEST_ARGS) tests/unit

.PHONY: test
test: venv check-pythons check-export image sif ## every suite: smoke tests inside the image and the SIF, SLURM arrays over the SIF (what .ci/run runs)
	export $(ENGINE); trap 'docker/engine.sh stop $(DOCKER_STATE)' EXIT; \
	TEXTLESS_IMAGE=$(IMAGE) TEXTLESS_SIF=$(abspath $(SIF)) TEXTLESS_APPTAINER_STATE=$(abspath $(APPTAINER_STATE)) \
	TEXTLESS_BUILD_DIR=$(abspath $(BUILD_DIR)) \
	  $(VENV)/bin/python -m pytest -c tests/pytest.ini $(PYTEST_ARGS) tests

.PHONY: test-local
test-local: venv check-pythons check-export ## the suites that need no image (smoke tests run against the local environment only)
	TEXTLESS_SMOKE_BACKENDS=local TEXTLESS_BUILD_DIR=$(abspath $(BUILD_DIR)) \
	  $(VENV)/bin/python -m pytest -c tests/pytest.ini $(PYTEST_ARGS) tests

.PHONY: clean
clean: engine-stop ## remove all build scratch (.build: images, SIFs, sources) and the local environment (.venv)
	tests/hpc/slurm-cluster.sh stop $(BUILD_DIR)/slurm
	rm -rf $(BUILD_DIR) $(VENV)
