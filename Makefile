# Twelve Heads — `make run` serves the page, `make test` runs the suite. Both set themselves up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS_DIR ?= $(or $(HEADS_MODELS_DIR),models)

.PHONY: run test bench chromium models clean

# The runtime only (no torch) when a model is already exported; the export extra only when one must be made.
run: $(VENV)/.installed-runtime models
	$(VENV)/bin/twelve-heads serve --models-dir $(MODELS_DIR) --host $(HOST) --port $(PORT)

# GPT-2 from the Hub when it can be reached; otherwise the planted-heads demo model, said in one line.
models: $(VENV)/.installed-runtime
	@if ! ls $(MODELS_DIR)/*/manifest.json >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(VENV)/.installed-export && \
		why=$$($(VENV)/bin/twelve-heads export gpt2 --models-dir $(MODELS_DIR) --quiet 2>&1 >/dev/null) || { \
		echo "Twelve Heads: GPT-2 was not exported ($${why#export: }) - serving the planted-heads demo model instead (synthetic, not GPT-2)."; \
		$(VENV)/bin/twelve-heads export --demo --models-dir $(MODELS_DIR) --quiet >/dev/null; }; \
	fi

test: $(VENV)/.installed-test chromium
	$(PY) -m pytest
	node --test tests/js/

bench: $(VENV)/.installed-test
	$(PIP) -e ".[export,test,bench]"
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_page.py

# Debian's chromium drives the browser tests (Playwright's own browser download cannot work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } >/dev/null

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis tests/artifacts benchmarks/out
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +

$(VENV)/.installed-runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# torch==2.13.0 first: a CPU build (here it is on local disk); a bare `torch` would pull a multi-GB CUDA build.
$(VENV)/.installed-export: $(VENV)/.installed-runtime
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[export]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-export
	$(PIP) -e ".[export,test]"
	touch $@
