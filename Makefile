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
	$(BIN)/pip install --quiet -e '.[dev,aws,gcp,devcloud,infra,monitor]'
	touch $@

# The CDK CLI, pinned to major 2 (the unversioned npm package is an old 3.0.0 that cannot read
# current cloud assemblies); only the infra tests and `make synth` use it.
CDK := .cdk-cli/node_modules/.bin/cdk
$(CDK):
	npm install --prefix .cdk-cli --no-audit --no-fund --silent aws-cdk@2

# Debian packages the tests drive, installed when missing (apt-get as root, as in CI, else with sudo):
# chromium + chromium-driver for the monitor's browser tests, blender for the Blender example.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
DEBIAN_TOOLS := /usr/bin/chromedriver /usr/bin/blender
/usr/bin/chromedriver:
	$(APT_INSTALL) chromium chromium-driver
/usr/bin/blender:
	$(APT_INSTALL) --no-install-recommends blender

# checkov, pinned, in a virtualenv of its own: it pins boto3 to an old release (1.35.49) that must not replace
# the one framefarm is tested with. Only tests/infra/test_checkov.py runs it (on the synthesized template).
CHECKOV_VERSION := 3.3.30
CHECKOV := .checkov/.installed-$(CHECKOV_VERSION)
$(CHECKOV):
	rm -rf .checkov && $(PYTHON) -m venv .checkov
	.checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

install: $(ALL)

demo: $(CORE)
	$(BIN)/framefarm render examples/testsrc.yaml

# The SQLite store also runs its contract tests on an older SQLite (Debian 11's) first. Three processes, one test
# file each at a time (module fixtures stay whole): most tests wait on subprocesses, servers or ffmpeg.
test: $(ALL) $(CDK) $(CHECKOV) $(DEBIAN_TOOLS)
	tests/old_sqlite/run.sh $(BIN)/python
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

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
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/transcode.py

clean:
	rm -rf $(VENV) .framefarm out .cdk-cli .cdk-home cdk.out .checkov
