# ddns-server developer tasks; `make help` lists them.
#
#   make serve              run the server on 127.0.0.1:5353 (DNS) and :8080 (HTTP)
#   make test               unit + integration tests, ruff, mypy
#   make test PYTEST_ARGS='-k axfr -x'
#   make bench BENCH_ARGS='--records 100000'
#   make fuzz FUZZ_ARGS='--cases 1000000 --seed 7'

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= conf/ddns.yaml
PYTEST_ARGS ?=
BENCH_ARGS ?=
FUZZ_ARGS ?=

.PHONY: help venv serve test unit tools bench lint dead format clean distclean

help:
	@echo "make serve      run ddns-server in the foreground with $(CONFIG) (Ctrl-C stops it)"
	@echo "make test       install the test tools if needed, then pytest, ruff check, mypy"
	@echo "make unit       only the unit tests (no sockets, no external tools)"
	@echo "make tools      install named, dig, nsupdate, knsupdate, ddclient, inadyn, curl"
	@echo "make bench      run bench/run.py \$$(BENCH_ARGS)"
	@echo "make fuzz       a long fuzz run of the DNS message path: scripts/fuzz.py \$$(FUZZ_ARGS)"
	@echo "make lint       ruff check, ruff format --check, mypy (and shellcheck if present)"
	@echo "make dead       vulture: unused code (framework callbacks in scripts/vulture_whitelist.py)"
	@echo "make format     ruff format and ruff check --fix"
	@echo "make venv       create $(VENV) and install the package with its test extra"
	@echo "make clean      remove caches and build output (keeps $(VENV) and var/)"
	@echo "make distclean  clean, and remove $(VENV) too"

# -- the virtualenv: created once, reinstalled when pyproject.toml changes

venv: $(STAMP)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "ddns-server needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)"; exit 1; }
	@echo "== creating $(VENV)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV); on Debian/Ubuntu: sudo apt-get install python3-venv"; exit 1; }

$(STAMP): pyproject.toml | $(PY)
	@echo "== installing ddns-server and its test tools into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# -- running

serve: venv
	$(VENV)/bin/ddns-server serve -c $(CONFIG)

bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

# Not part of `make test` (which runs a few thousand cases in tests/unit/test_fuzz.py).
fuzz: venv
	$(PY) scripts/fuzz.py $(FUZZ_ARGS)

tools:
	@bash scripts/ensure-tools.sh

# -- checking
#
# Every step runs even when an earlier one fails, so one run shows everything
# that is wrong; the exit status is non-zero if any step failed.

test: venv tools
	@failed=""; \
	echo "== pytest"; $(PY) -m pytest -q $(PYTEST_ARGS) || failed="$$failed pytest"; \
	echo "== ruff check"; $(VENV)/bin/ruff check --output-format=concise ddns_server tests || failed="$$failed ruff"; \
	echo "== mypy"; $(VENV)/bin/mypy ddns_server || failed="$$failed mypy"; \
	if [ -n "$$failed" ]; then echo "== make test FAILED:$$failed"; exit 1; fi; \
	echo "== make test passed"

unit: venv
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: venv
	@failed=""; \
	echo "== ruff check"; $(VENV)/bin/ruff check ddns_server tests || failed="$$failed ruff-check"; \
	echo "== ruff format --check"; $(VENV)/bin/ruff format --check ddns_server tests || failed="$$failed ruff-format"; \
	echo "== mypy"; $(VENV)/bin/mypy ddns_server || failed="$$failed mypy"; \
	if command -v shellcheck >/dev/null; then \
		echo "== shellcheck"; shellcheck scripts/*.sh .ci/run || failed="$$failed shellcheck"; \
	fi; \
	if [ -n "$$failed" ]; then echo "== make lint FAILED:$$failed"; exit 1; fi

dead: venv
	$(VENV)/bin/vulture ddns_server scripts/vulture_whitelist.py --exclude ddns_server/mirrors/base.py

format: venv
	$(VENV)/bin/ruff format ddns_server tests
	$(VENV)/bin/ruff check --fix ddns_server tests

# -- cleaning (never var/: that is the journal `make serve` writes)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench/out
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
