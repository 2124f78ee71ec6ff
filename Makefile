# PlantGuard — the two commands a newcomer needs: `make demo` and `make test`.
# Both create the virtual environment they need in .venv/ from pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -p plantguard -p plantguard_opcua -p plantguard_modbus -p plantguard_sim -p plantguard_rules -p plantguard_maintenance -p plantguard_mqtt -p plantguard_mqtt_publish -p plantguard_risk
DEMO_ARGS ?=
BENCHDATA ?= ../shared/benchdata

.PHONY: venv demo test lint typecheck pytest chromium interop test-ha bench bench-modbus bench-detect bench-rules bench-scale bench-opcua bench-login clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/plantguard demo $(DEMO_ARGS)

test: lint typecheck pytest interop test-ha

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# tests/ and bench/ hold top-level modules (conftest, opcua_engine, opcua_bench, ...), not
# packages: a second run, where mypy takes each directory as the base of its files.
typecheck: venv
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/mypy tests bench

# Under coverage (the floor is fail_under in pyproject.toml).
pytest: venv chromium
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage report

# Headless Chromium renders the report and acceptance pages in the tests (tests/browser.py):
# Debian's package, installed once when /usr/bin/chromium is missing (as root, else with sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium: /usr/bin/chromium

/usr/bin/chromium:
	@echo "installing Debian's chromium for the browser tests"
	@$(SUDO) apt-get update -qq
	@DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-dejavu-core >/dev/null

# node-opcua (npm, locked by tests/interop/package-lock.json) as an independent OPC UA client.
interop: venv
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error \
		&& PLANTGUARD_PYTHON=$(abspath $(BIN))/python npm test --silent

# Benchmarks measure speed and detection quality; tests never assert timings.
bench: bench-modbus bench-detect bench-rules bench-scale bench-opcua bench-login bench-hotpaths bench-mqtt

bench-modbus: venv
	$(BIN)/python bench/modbus_bench.py

bench-detect: venv
	$(BIN)/python bench/detect_bench.py --data $(BENCHDATA)

bench-rules: venv
	$(BIN)/python bench/rules_bench.py
	$(BIN)/python bench/prediction_bench.py

bench-scale: venv
	$(BIN)/python bench/scale_bench.py --sizes 1000 10000 50000

# Modbus poll gaps while clients guess OPC UA passwords: idle, throttled, locked, and the
# code before plantguard.throttle, interleaved (~6 min).
bench-login: venv
	$(BIN)/python bench/login_attack_bench.py

# PlantGuard's OPC UA server against a plain asyncua server, interleaved (~25 min;
# OPCUA_BENCH_ARGS=--quick for a short run); then throughput with node-opcua clients,
# which decode fast enough to measure the server rather than the client.
OPCUA_BENCH_ARGS ?=
bench-opcua: venv
	$(BIN)/python bench/opcua_bench.py $(OPCUA_BENCH_ARGS)
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	cd bench && ../$(BIN)/python opcua_fanout_bench.py

# Home Assistant integration: its own Python 3.13 environment (.venv-ha), installed with
# Home Assistant's own pins as constraints (taken from the HA wheel once, cached in the venv).
# Its tests run against a real gateway started from .venv, hence the dependency on venv.
PYTHON_HA ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
VENV_HA := .venv-ha
HA_DIR := integrations/homeassistant
HA_VERSION := $(shell sed -n 's/^homeassistant==//p' $(HA_DIR)/requirements-test.txt)

$(VENV_HA)/.installed: $(HA_DIR)/requirements-test.txt
	$(PYTHON_HA) -m venv $(VENV_HA)
	$(VENV_HA)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_HA)/bin/python -m pip download --quiet --no-deps homeassistant==$(HA_VERSION) -d $(VENV_HA)/wheels
	$(VENV_HA)/bin/python -c "import sys, zipfile; \
	  sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('homeassistant/package_constraints.txt').decode())" \
	  $(VENV_HA)/wheels/homeassistant-$(HA_VERSION)-py3-none-any.whl > $(VENV_HA)/ha-constraints.txt
	$(VENV_HA)/bin/python -m pip install --quiet -c $(VENV_HA)/ha-constraints.txt -r $(HA_DIR)/requirements-test.txt
	touch $@

test-ha: venv $(VENV_HA)/.installed
	cd $(HA_DIR) && ../../$(VENV_HA)/bin/ruff check . && ../../$(VENV_HA)/bin/ruff format --check .
	cd $(HA_DIR) && ../../$(VENV_HA)/bin/mypy
	cd $(HA_DIR) && ../../$(VENV_HA)/bin/pytest -q --cov=custom_components.plantguard --cov-report=term-missing --cov-fail-under=95

# The archive a GitHub release carries for HACS (hacs.json: zip_release) and for manual
# installs: the integration's files at its root, reproducible.  See docs/homeassistant.md.
.PHONY: ha-release
ha-release:
	$(PYTHON) $(HA_DIR)/release.py dist/plantguard.zip

# The gateway's container image (Dockerfile, docs/install.md) with docker or podman;
# says so and fails when the engine is missing or its daemon does not answer.
.PHONY: image
IMAGE ?= plantguard:0.1.0
CONTAINER_ENGINE ?= $(firstword $(shell command -v docker podman 2>/dev/null))
image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image: no container engine (docker or podman) installed"; exit 1; }
	@$(CONTAINER_ENGINE) info >/dev/null 2>&1 || { echo "make image: $(CONTAINER_ENGINE) is installed but its daemon is not running or not reachable; nothing built"; exit 1; }
	$(CONTAINER_ENGINE) build -t $(IMAGE) .

clean:
	rm -rf $(VENV) $(VENV_HA) .mypy_cache .ruff_cache .pytest_cache *.egg-info plantguard-demo.db*

# Hot paths against the floor under each (issue table rows), side by side, interleaved:
# rule scan, history writes and reads, command start-up, alarm latency.
.PHONY: bench-hotpaths bench-mqtt
bench-hotpaths: venv
	$(BIN)/python bench/hotpaths_bench.py

# MQTT ingest by the driver and Sparkplug B publishing, against the raw client's rates.
bench-mqtt: venv
	$(BIN)/python bench/mqtt_ingest_bench.py
	$(BIN)/python bench/mqtt_publish_bench.py
