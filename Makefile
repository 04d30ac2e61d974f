# `make demo` and `make test` each build .venv from scratch when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	rm -f $(VENV)/.installed-*
	$(BIN)/pip install --quiet -e '.[dev,aws]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/framefarm render examples/testsrc.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check --output-format concise src tests bench lambda_handlers infra
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/local_render.py
	$(BIN)/python bench/dynamodb_writes.py
	$(BIN)/python bench/lambda_fanout.py
	$(BIN)/python bench/merge.py

clean:
	rm -rf $(VENV) .framefarm out
