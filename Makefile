# failover-notify: the commands people type. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo demo-keep test lint typecheck check bench simulators clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev tools

demo: $(STAMP) ## the failover walkthrough on loopback simulators; exits when done
	$(BIN)/python -m daemon.simulators.demo

demo-keep: $(STAMP) ## the demo, then keep daemon and simulators running (Ctrl-C stops)
	$(BIN)/python -m daemon.simulators.demo --keep-running

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff, and the import contracts that keep the layers (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check daemon bot tui tests
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy (strict) on daemon/, bot/ and tui/
	$(BIN)/mypy

check: lint typecheck test ## everything CI checks

bench: $(STAMP) ## the benchmark: prints a table, writes bench/results/*.json
	$(BIN)/python -m bench

simulators: $(STAMP) ## run the Telegram / SMTP / Twilio simulators on loopback
	$(BIN)/python -m daemon.simulators

clean: ## remove the venv, caches and demo state
	rm -rf $(VENV) .fnotify .pytest_cache .mypy_cache .ruff_cache build *.egg-info
