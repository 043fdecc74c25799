# Twelve Heads — `make run` serves the page, `make test` runs the suite. Both set themselves up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS_DIR ?= models

.PHONY: run test bench chromium models

run: $(VENV)/.installed-export models
	@echo "Twelve Heads: open http://$(HOST):$(PORT)/"
	HEADS_MODELS_DIR=$(MODELS_DIR) $(VENV)/bin/gunicorn --workers 1 --threads 8 --bind $(HOST):$(PORT) \
		--access-logfile - 'server:create_app()'

# GPT-2 from the Hub when it can be reached; otherwise the planted-heads demo model, said in one line.
models: $(VENV)/.installed-export
	@if [ ! -f $(MODELS_DIR)/gpt2/manifest.json ]; then \
		why=$$($(PY) -m export gpt2 --models-dir $(MODELS_DIR) --quiet 2>&1 >/dev/null) || { \
		echo "Twelve Heads: GPT-2 was not exported ($${why#export: }) - serving the planted-heads demo model instead (synthetic, not GPT-2)."; \
		[ -f $(MODELS_DIR)/demo/manifest.json ] || $(PY) -m export --demo --models-dir $(MODELS_DIR) --quiet >/dev/null; }; \
	fi

test: $(VENV)/.installed-test chromium
	$(PY) -m pytest

bench: $(VENV)/.installed-test
	$(PY) -m pip install -q --disable-pip-version-check -e ".[export,test,bench]"
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_server.py
	$(PY) benchmarks/bench_page.py

# Debian's chromium drives the browser tests (Playwright's own browser download cannot work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } >/dev/null

# torch==2.13.0 first: a CPU build (here it is on local disk); a bare `torch` would pull a multi-GB CUDA build.
$(VENV)/.installed-export: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[export]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-export
	$(PY) -m pip install -q --disable-pip-version-check -e ".[export,test]"
	touch $@
