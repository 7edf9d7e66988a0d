# Everything a fresh machine needs: `make run` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DB ?= cronflow.db

.PHONY: install test-deps run test lint typecheck bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The runtime with the bundled example workflows, on the embedded SQLite database, behind HTTP
# on 127.0.0.1:$(PORT) until Ctrl-C.
PORT ?= 8000
run: $(STAMP)
	$(PY) -m cronflow_actors serve --db $(DB) --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check cronflow_actors tests benchmarks examples
	$(PY) -m ruff format --check cronflow_actors tests benchmarks examples

typecheck: $(STAMP)
	$(PY) -m mypy

# What the tests need outside the virtualenv: Debian's prometheus (prometheus, promtool) for
# tests/metrics/ and Debian's chromium for the console's browser tests (tests/console/, which
# save screenshots under test-output/). Installed when missing and run as root; a no-op once
# installed.
test-deps:
	bash .ci/install-test-deps

test: lint typecheck test-deps
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/kernel.py
	$(PY) benchmarks/store.py
	$(PY) benchmarks/net.py
	$(PY) benchmarks/flow.py
	$(PY) benchmarks/http.py
	$(PY) benchmarks/waiting.py
	$(PY) benchmarks/metrics.py

bench-quick: $(STAMP)
	$(PY) benchmarks/kernel.py --quick
	$(PY) benchmarks/store.py --quick
	$(PY) benchmarks/net.py --quick
	$(PY) benchmarks/flow.py --quick
	$(PY) benchmarks/http.py --quick
	$(PY) benchmarks/waiting.py --quick
	$(PY) benchmarks/metrics.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info test-output
