# seen-worker: the README's two commands are `make run` and `make test`.
# Every target creates/updates .venv itself from uv.lock (only python3 must be installed).

VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.synced-stamp
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

.PHONY: run worker test test-all lint format bench lock clean sync-clients

$(STAMP): pyproject.toml uv.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --locked --all-extras --quiet
	@touch $@

## run: the demo (embedded server + worker + simulated downloads + dashboard, live, new
##      downloads starting as others end, until Ctrl-C),
##      or, with $SEEN_CACHE_ADDR set, the worker against that store
run: $(STAMP)
	@if [ -n "$$SEEN_CACHE_ADDR" ]; then $(VENV)/bin/seen-worker run; \
	else $(VENV)/bin/seen-worker demo $(DEMO_ARGS); fi

## test: everything but the slow soak tests, against a private server
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## test-all: including slow tests
test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff + mypy --strict
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: every benchmark and its peers in one run (medians of 3 runs; results in
##        bench/results/latest.json); QUICK=1 for a short smoke run. BullMQ for Node is an
##        optional peer: `npm ci` in bench/node when npm is installed (else its rows say skipped);
##        PYSPY=<py-spy binary> profiles the worker with py-spy (else cProfile)
bench: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then \
		(cd bench/node && npm ci --no-audit --no-fund --loglevel=error) || \
		echo "bench: npm ci in bench/node failed; BullMQ will be skipped"; \
	else echo "bench: node/npm not found; BullMQ will be skipped"; fi
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(PYSPY),--py-spy $(PYSPY),)

## sync-clients: copy the coalescing put script into the Go and Node clients (they ship it;
##               tests/conformance/test_script_copies.py fails while a copy differs)
CLIENT_SCRIPTS := clients/go/scripts clients/node/scripts
sync-clients:
	@for dir in $(CLIENT_SCRIPTS); do cp cache/scripts/download_pending_put.lua $$dir/; done
	@echo "copied cache/scripts/download_pending_put.lua to $(CLIENT_SCRIPTS)"

lock:
	@test -x $(UV) || (python3 -m venv $(VENV) && $(PY) -m pip install --quiet "uv==$(UV_VERSION)")
	$(UV) lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
