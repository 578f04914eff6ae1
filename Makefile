# Each target creates .venv and installs what it needs. Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

# The pip that comes with the venv, not upgraded: the project installs with the pip Python 3.11 ships (23.2.1),
# and every `make` run proves it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned first so that pip takes the local CPU build instead of a multi-GB CUDA one.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,languages]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crawlproc demo --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,languages,bench]"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo-out bench/out
