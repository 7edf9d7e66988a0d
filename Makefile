# Everything a fresh machine needs: `make run` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DB ?= cronflow.db

# Python's bytecode cache, even where the environment turns it off: without it every process
# compiles the package's ~150 modules again (~0.35 s each start, and the suite starts hundreds:
# tests/test_cli.py took 32 s instead of 18). __pycache__/ is ignored by git.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install test-deps run test test-compiled lint typecheck bench bench-quick bench-compiled bench-suite bench-suite-quick bench-peers bench-scripts bench-scripts-quick clean

# The first target: a bare `make` says what there is (it made only the virtualenv: devx h43 F10).
help:
	@echo "make run     the runtime with the bundled example on SQLite ($(DB)), http://127.0.0.1:$(PORT)/ui"
	@echo "             (DB=path PORT=n to change them; Ctrl-C stops it)"
	@echo "make test    everything the tests need (Debian packages too), then the whole suite"
	@echo "make lint    ruff;  make typecheck: mypy;  make bench-quick: the benchmark suite in ~90 s"
	@echo "make install the package and its development tools in $(VENV)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# What `make run` needs, and no more: the package with uvloop (the tools of the tests and
# benchmarks come with `make install` / `make test`).
RUN_STAMP := $(VENV)/.installed-run
$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[uvloop]'
	touch $(RUN_STAMP)

# The runtime with the one bundled example flow (order-processing), on the embedded SQLite
# database, behind HTTP on 127.0.0.1:$(PORT) until Ctrl-C.
PORT ?= 8000
run: $(RUN_STAMP)
	$(PY) -m cronflow_actors serve --db '$(DB)' --port '$(PORT)'

lint: $(STAMP)
	$(PY) -m ruff check cronflow_actors tests benchmarks examples setup.py _build .ci/test-compiled
	$(PY) -m ruff format --check cronflow_actors tests benchmarks examples setup.py _build \
		.ci/test-compiled

typecheck: $(STAMP)
	$(PY) -m mypy

# What the tests need outside the virtualenv: Debian's prometheus (prometheus, promtool) for
# tests/metrics/, Debian's chromium for the console's browser tests (tests/console/, which save
# screenshots under test-output/), Debian's postgresql (initdb, pg_ctl: each test session
# starts a throwaway server of its own, tests/pg/server.py) and gcc (test-compiled's C).
# Installed when missing and run as root, with one apt-get update; a no-op once installed.
test-deps:
	bash .ci/install-test-deps

# The suite on two processes (pytest-xdist): most of its time is serve processes, servers and
# fsyncs waited on, and one process left a core idle (10.5 min, 5.7 min on two, here).
PYTEST_WORKERS ?= 2

test: lint typecheck test-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS)
	PY=$(PY) .ci/test-compiled -n $(PYTEST_WORKERS) $(COMPILED_TESTS)

# The engine compiled by mypyc (setup.py), built as `CRONFLOW_ACTORS_COMPILE=1 pip install .`
# builds it, in a copy of the tree (build/compiled/), under the tests of what it compiles.
COMPILED_TESTS ?= -q tests/engine tests/net tests/flow tests/kernel tests/store tests/metrics \
	tests/runtime tests/test_calls.py
test-compiled: $(STAMP) test-deps
	PY=$(PY) .ci/test-compiled -n $(PYTEST_WORKERS) $(COMPILED_TESTS)

# The suite of issue 16: cronflow-actors' workloads and the peers, one after another; results,
# Markdown and a PNG chart in benchmarks/results/TIME/, the summary JSON line last; (a) on the
# engine compiled by mypyc too (setup.py).
bench: bench-suite

bench-suite: $(STAMP)
	$(PY) -m cronflow_actors bench --compiled

# (a) on the engine compiled by mypyc beside the pure one's, quick, without the peers (setup.py)
bench-compiled: $(STAMP)
	$(PY) -m cronflow_actors bench --quick --compiled --peers ''

bench-suite-quick: $(STAMP)
	$(PY) -m cronflow_actors bench --quick

# The peers (DBOS, SpiffWorkflow, Prefect, Restate's SDK) and matplotlib in a virtualenv of their
# own, so they never change what the runtime and its tests use; the Restate server from npm.
PEERS_DIR := benchmarks/.peers
PEERS_PY := $(PEERS_DIR)/venv/bin/python
RESTATE_NPM := @restatedev/restate-server-linux-x64
bench-peers:
	test -x $(PEERS_PY) || $(PYTHON) -m venv $(PEERS_DIR)/venv
	$(PEERS_PY) -m pip install --quiet --upgrade pip
	$(PEERS_PY) -m pip install --quiet matplotlib dbos SpiffWorkflow 'prefect>=3,<4' 'restate-sdk[serde]' hypercorn
	mkdir -p $(PEERS_DIR)/restate
	cd $(PEERS_DIR)/restate && npm install --no-audit --no-fund --silent $(RESTATE_NPM)

# Each component's own benchmark script (the before/after yardsticks).
bench-scripts: $(STAMP)
	$(PY) benchmarks/kernel.py
	$(PY) benchmarks/store.py
	$(PY) benchmarks/net.py
	$(PY) benchmarks/flow.py
	$(PY) benchmarks/http.py
	$(PY) benchmarks/waiting.py
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/chains.py
	$(PY) benchmarks/orjoin.py

bench-quick: bench-suite-quick

bench-scripts-quick: $(STAMP)
	$(PY) benchmarks/kernel.py --quick
	$(PY) benchmarks/store.py --quick
	$(PY) benchmarks/net.py --quick
	$(PY) benchmarks/flow.py --quick
	$(PY) benchmarks/http.py --quick
	$(PY) benchmarks/waiting.py --quick
	$(PY) benchmarks/metrics.py --quick
	$(PY) benchmarks/chains.py --quick
	$(PY) benchmarks/orjoin.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info test-output
