# `make demo` and `make test` each build .venv from scratch when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when pyproject.toml changes. Two stamps: CORE is the package alone (what `make demo` needs to
# render locally), ALL adds every extra on top (what the tests, lint, synth and benchmarks need).
CHECKSUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
CORE := $(VENV)/.installed-core-$(CHECKSUM)
ALL := $(VENV)/.installed-all-$(CHECKSUM)

.PHONY: demo test test-old-sqlite fuzz lint bench clean install synth

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(CORE): $(BIN)/python pyproject.toml
	rm -f $(VENV)/.installed-*
	$(BIN)/pip install --quiet -e .
	touch $@

$(ALL): $(CORE)
	$(BIN)/pip install --quiet -e '.[dev,aws,gcp,devcloud,infra]'
	touch $@

# The CDK CLI, pinned to major 2 (the unversioned npm package is an old 3.0.0 that cannot read
# current cloud assemblies); only the infra tests and `make synth` use it.
CDK := .cdk-cli/node_modules/.bin/cdk
$(CDK):
	npm install --prefix .cdk-cli --no-audit --no-fund --silent aws-cdk@2

install: $(ALL)

demo: $(CORE)
	$(BIN)/framefarm render examples/testsrc.yaml

# The SQLite store also runs its contract tests on an older SQLite (Debian 11's) first.
test: $(ALL) $(CDK)
	tests/old_sqlite/run.sh $(BIN)/python
	$(BIN)/python -m pytest -q

# The hostile-input tests with many more cases, new ones each run (tests/conftest.py's "fuzz" profile).
# Keep every failing case it finds as an explicit @example or test.
fuzz: $(ALL)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/unit/test_hostile_input.py

# The SQLite store's contract tests on Debian 11's libsqlite3 (3.34.1), fetched with apt-get from
# the machine's Debian archive into a scratch directory (Debian or Ubuntu only; needs a C compiler).
test-old-sqlite: $(ALL)
	tests/old_sqlite/run.sh $(BIN)/python

synth: $(ALL) $(CDK)
	PATH="$(CURDIR)/$(BIN):$$PATH" CDK_HOME="$(CURDIR)/.cdk-home" JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
		$(CDK) synth --quiet --no-notices

lint: $(ALL)
	$(BIN)/ruff check --output-format concise src tests bench lambda_handlers infra
	$(BIN)/mypy

bench: $(ALL)
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/local_render.py
	$(BIN)/python bench/dynamodb_writes.py
	$(BIN)/python bench/lambda_fanout.py
	$(BIN)/python bench/merge.py
	$(BIN)/python bench/cloud_run_overhead.py
	$(BIN)/python bench/watchdog.py
	$(BIN)/python bench/transcode.py

clean:
	rm -rf $(VENV) .framefarm out .cdk-cli .cdk-home cdk.out
