# PlantGuard — the two commands a newcomer needs: `make demo` and `make test`.
# Both create the virtual environment they need in .venv/ from pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -p plantguard -p plantguard_opcua -p plantguard_modbus -p plantguard_sim -p plantguard_rules -p plantguard_maintenance
DEMO_ARGS ?=
BENCHDATA ?= ../shared/benchdata

.PHONY: venv demo test lint typecheck pytest interop bench bench-modbus bench-detect bench-rules clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/plantguard demo $(DEMO_ARGS)

test: lint typecheck pytest interop

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy $(PACKAGES)

pytest: venv
	$(BIN)/pytest

# node-opcua (npm, locked by tests/interop/package-lock.json) as an independent OPC UA client.
interop: venv
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error \
		&& PLANTGUARD_PYTHON=$(abspath $(BIN))/python npm test --silent

# Benchmarks measure speed and detection quality; tests never assert timings.
bench: bench-modbus bench-detect bench-rules

bench-modbus: venv
	$(BIN)/python bench/modbus_bench.py

bench-detect: venv
	$(BIN)/python bench/detect_bench.py --data $(BENCHDATA)

bench-rules: venv
	$(BIN)/python bench/rules_bench.py
	$(BIN)/python bench/prediction_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info plantguard-demo.db*
