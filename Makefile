# Set-up and entry points. `make demo` and `make test` each do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed first and on its own, so that no later requirement pulls a CUDA build on CPU machines.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= qm9,xtb,ani,sevenn,slurm,dev
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
DATA ?= data

.PHONY: setup demo test test-fast lint format bench-ingest mattersim-data perf clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(BIN)/atomcollapse --data-root $(DATA) ingest qm9 --skip-existing
	$(BIN)/atomcollapse --data-root $(DATA) datasets show qm9

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check atomcollapse tests benchmarks
	$(BIN)/ruff format --check atomcollapse tests benchmarks
	$(BIN)/mypy atomcollapse

format: $(STAMP)
	$(BIN)/ruff format atomcollapse tests benchmarks
	$(BIN)/ruff check --fix atomcollapse tests benchmarks

# MatterSim's 5,222 DFT benchmark frames, from the mattersim==1.2.3 source archive on PyPI.
mattersim-data: $(STAMP)
	$(BIN)/python -m atomcollapse.data.sources.mattersim --out $(DATA)/raw/mattersim

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py --data-root $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info
