# rlguard: every target does its own set-up on a fresh machine (Python 3.11 + pip).
#   make demo   run the whole stack on the embedded simulator
#   make test   lint-free build + the test suite
#   make lint   ruff, the floor check of the import graph, Dockerfile and SDF checks
#   make bench  benchmarks, results under bench/results/
SHELL := /bin/bash
.SHELLFLAGS := -e -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
BUILD_STAMP := install/.rlguard-built
PACKAGES_SRC := $(shell find src -type f \( -name '*.py' -o -name '*.xml' -o -name '*.cfg' -o -name '*.yaml' -o -name '*.sdf' \) -not -path '*/test/*' 2>/dev/null)
# Files the packages install from the workspace (setup.py data_files): a new model or
# config must reach install/ too.
INSTALLED_FILES := $(wildcard models/* config/*.yaml config/robots/*.yaml launch/*.py)

# DDS traffic stays on loopback for every target.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export PYTHONDONTWRITEBYTECODE := 1
# Nodes resolve relative model paths and shipped files against this checkout.
export RLGUARD_WORKSPACE := $(CURDIR)

# A shell prefix that activates the venv and the built workspace.
WS := source $(VENV)/bin/activate && source install/setup.bash &&

.PHONY: help setup build test lint sdf-check demo bench reliability clean distclean

help:
	@echo "make demo | make test | make lint | make bench | make reliability | make clean"

$(DEPS_STAMP): requirements.txt src/rl_training/pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade --quiet "pip>=24"
	$(VPY) -m pip install --quiet -r requirements.txt
	$(VPY) -m pip install --quiet "setuptools<80"
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e src/rl_training
	touch $@

setup: $(DEPS_STAMP)

$(BUILD_STAMP): $(DEPS_STAMP) $(PACKAGES_SRC) $(INSTALLED_FILES) colcon.meta
	source $(VENV)/bin/activate && colcon build --symlink-install --event-handlers console_cohesion- summary+
	touch $@

build: $(BUILD_STAMP)

test: $(BUILD_STAMP)
	$(WS) python -m pytest $(PYTEST_ARGS)

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --diff . || (echo "run: .venv/bin/ruff format ." && false)
	$(VENV)/bin/hadolint docker/Dockerfile
	$(VPY) src/rlguard_tools/rlguard_tools/floor_check.py
	PYTHONPATH=src/sim_bringup:src/rlguard_common $(VPY) -m sim_bringup.gazebo_gen --check
	$(MAKE) --no-print-directory sdf-check

# Gazebo's own SDF checker (Debian: ignition-tools + libsdformat-dev), installed on demand.
sdf-check:
	command -v ign >/dev/null || { apt-get update -qq && apt-get install -y -qq ignition-tools libsdformat-dev >/dev/null; }
	for sdf in src/sim_bringup/gazebo/worlds/*.sdf src/sim_bringup/gazebo/models/rlguard_robot/model.sdf; do \
		ign sdf -k "$$sdf" 2>&1 | grep -v 'libignition-tools-backward' | tee /tmp/rlguard-sdf-check.log; \
		grep -q '^Valid' /tmp/rlguard-sdf-check.log || { echo "SDF check failed: $$sdf"; exit 1; }; \
	done

# The whole stack on the embedded simulator, scripted; artefacts in runs/<timestamp>/.
demo: $(BUILD_STAMP)
	$(WS) python -m rlguard_tools.demo --world warehouse $(DEMO_ARGS)

bench: $(BUILD_STAMP)
	mkdir -p bench/results
	for script in $$(ls src/*/bench/bench_*.py bench/bench_*.py 2>/dev/null | sort); do \
		echo "== $$script"; $(WS) python "$$script" --out bench/results; \
	done
	$(WS) python bench/aggregate.py --out bench/results

# The adversarial campaign through the real safety core, 100,000 control steps per class
# (a small budget of every class runs in make test), then the fault-injection matrix over
# real processes (its rows are tests in make test too).
reliability: $(BUILD_STAMP)
	mkdir -p bench/results
	$(WS) python -m rlguard_tools.reliability_campaign --steps 100000 --workers 2 --out bench/results
	$(WS) RLGUARD_FAULT_MATRIX_OUT=bench/results python -m pytest -q src/rlguard_tools/test/test_fault_matrix.py

clean:
	rm -rf build install log

distclean: clean
	rm -rf $(VENV)
