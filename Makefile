# Set-up and entry points. `make demo` and `make test` each do their own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Installed first and on its own, so that no later requirement pulls a CUDA build on CPU machines.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= qm9,xtb,ani,sevenn,so3lr,chgnet,slurm,tracking,dev
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
DATA ?= data

AC := $(BIN)/atomcollapse --data-root $(DATA)
# The canonical QM9 splits whose test molecules pretraining data must not contain.
XTB_EXCLUDE := $(foreach s,$(sort $(wildcard splits/qm9/*/manifest.json)),--exclude-split $(patsubst %/manifest.json,%,$(s)))

.PHONY: deepmd setup demo test test-fast lint format bench-ingest mattersim-data pretrained pretrained-check bench-deps perf \
	perf-quick setup-mace test-mace clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

# The DeePMD-kit bridge (extra 'deepmd'; not in EXTRAS). PyPI's deepmd-kit 3.2.0 wheel carries
# PyTorch ops built for torch 2.11 (`import deepmd.pt` refuses torch 2.13), and its [torch]
# extra would pull torch 2.11. So its source archive is built once against $(TORCH_SPEC) in a
# build venv (about 7 minutes on 2 cores) into $(DEEPMD_CACHE); later set-ups reuse that wheel.
# The wheel goes in with --no-deps, then the extra brings its plain dependencies next to
# $(TORCH_SPEC), so pip fails rather than replace torch.
DEEPMD_VERSION := 3.2.0
DEEPMD_CACHE ?= $(HOME)/.cache/atomcollapse/deepmd
DEEPMD_WHEEL := $(DEEPMD_CACHE)/wheels/deepmd_kit-$(DEEPMD_VERSION)-py37-none-linux_x86_64.whl
DEEPMD_STAMP := $(VENV)/.installed-deepmd

deepmd: $(DEEPMD_STAMP)

$(DEEPMD_WHEEL):
	mkdir -p $(DEEPMD_CACHE)/src
	test -x $(DEEPMD_CACHE)/buildenv/bin/pip || $(PYTHON) -m venv $(DEEPMD_CACHE)/buildenv
	$(DEEPMD_CACHE)/buildenv/bin/pip install -q "$(TORCH_SPEC)" "scikit-build-core>=1" \
		dependency_groups packaging setuptools_scm hatch-fancy-pypi-readme "cmake>=3.25.2" ninja
	DP_ENABLE_PYTORCH=1 DP_ENABLE_TENSORFLOW=0 DP_VARIANT=cpu \
		$(DEEPMD_CACHE)/buildenv/bin/pip download -q --no-deps --no-build-isolation \
		--no-binary deepmd-kit "deepmd-kit==$(DEEPMD_VERSION)" -d $(DEEPMD_CACHE)/src
	DP_ENABLE_PYTORCH=1 DP_ENABLE_TENSORFLOW=0 DP_VARIANT=cpu \
		$(DEEPMD_CACHE)/buildenv/bin/pip wheel -q --no-build-isolation --no-deps \
		-w $(DEEPMD_CACHE)/wheels $(DEEPMD_CACHE)/src/deepmd_kit-$(DEEPMD_VERSION).tar.gz

$(DEEPMD_STAMP): $(DEEPMD_WHEEL) $(STAMP)
	$(BIN)/pip install -q --no-deps $(DEEPMD_WHEEL)
	$(BIN)/pip install -q "$(TORCH_SPEC)" -e ".[deepmd]"
	$(BIN)/python -c "import deepmd.pt"
	touch $@

# The main job: the CPU smoke benchmark (ingest QM9 from the qm9pack wheel, committed split and
# checkpoint, 4 strategies x 2 seeds, report table, plots, collapse analysis).
demo: $(STAMP)
	$(AC) bench benchmarks/smoke.toml --out results/smoke
	@echo "The smoke run checks that everything works; what a longer CPU study shows about MFT: docs/evidence.md"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check atomcollapse tests benchmarks examples
	$(BIN)/ruff format --check atomcollapse tests benchmarks examples
	$(BIN)/mypy atomcollapse

format: $(STAMP)
	$(BIN)/ruff format atomcollapse tests benchmarks examples
	$(BIN)/ruff check --fix atomcollapse tests benchmarks examples

# MatterSim's 5,222 DFT benchmark frames, from the mattersim==1.2.3 source archive on PyPI.
mattersim-data: $(STAMP)
	$(BIN)/python -m atomcollapse.data.sources.mattersim --out $(DATA)/raw/mattersim
	$(AC) ingest extxyz $$(printf '%s\n' $(DATA)/raw/mattersim/*.xyz | LC_ALL=C sort) \
		--name mattersim --overwrite

# Rebuilds the committed checkpoints under pretrained/ from a fresh clone, offline, bit for bit on
# CPU (one thread per process; about an hour on 2 cores): GFN2-xTB conformers of QM9 molecules outside
# the canonical splits' test sets, a PaiNN pretrained on them, the 2,000-conformer subset that the
# smoke benchmark uses for MFT, and a materials PaiNN pretrained on MatterSim's DFT frames.
pretrained: $(STAMP)
	$(AC) ingest qm9 --skip-existing
	$(AC) label xtb --name qm9-xtb --data qm9 --n-molecules 4000 --per-molecule 4 \
		--method rattle --method rdkit --seed 0 $(XTB_EXCLUDE) --overwrite
	OMP_NUM_THREADS=1 $(AC) pretrain --data qm9-xtb --out pretrained/painn-qm9-xtb/checkpoint.pt \
		--hidden 64 --layers 3 --rbf 20 --cutoff 5.0 --steps 1000 --batch-size 32 --seed 0 \
		--device cpu --no-progress --overwrite
	$(AC) datasets subset qm9-xtb --n 2000 --seed 0 --out pretrained/qm9-xtb-2k --overwrite
	$(MAKE) mattersim-data
	OMP_NUM_THREADS=1 $(AC) pretrain --data mattersim --out pretrained/painn-mattersim/checkpoint.pt \
		--hidden 64 --layers 3 --rbf 20 --cutoff 5.0 --steps 1500 --batch-size 16 --seed 0 \
		--energy-weight 1 --energy-weight-end 20 --force-weight 10 --force-weight-end 10 \
		--device cpu --no-progress --overwrite

# `make pretrained`, then a check that the rebuilt checkpoints carry the committed weights bit for
# bit (`checkpoint diff` ignores only created_at, code_version and wall-clock times) and that the
# rebuilt subset store has the committed arrays byte for byte.
CHECKPOINTS := painn-qm9-xtb painn-mattersim
pretrained-check: pretrained
	mkdir -p $(DATA)/committed
	$(foreach c,$(CHECKPOINTS),git show HEAD:pretrained/$(c)/checkpoint.pt > $(DATA)/committed/$(c).pt &&) true
	$(foreach c,$(CHECKPOINTS),$(AC) checkpoint diff $(DATA)/committed/$(c).pt pretrained/$(c)/checkpoint.pt &&) true
	git diff --exit-code --stat -- 'pretrained/qm9-xtb-2k/*.npy'

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py --data-root $(DATA)

# Optional benchmark dependencies: schnetpack 2.1.1's PaiNN is the training-throughput reference.
# schnetpack and the Lightning packages would pull another torch, so they go in with --no-deps;
# their plain dependencies go in normally, next to $(TORCH_SPEC) so that pip fails rather than
# replace torch. Not in pyproject.toml: an extra cannot say --no-deps.
BENCH_NODEPS := schnetpack==2.1.1 pytorch-lightning==2.6.6 torchmetrics==1.9.0 \
	lightning-utilities==0.15.3 torch-ema==0.3
BENCH_DEPS := h5py==3.16.0 PyYAML==6.0.4 fasteners==0.20 dirsync==2.2.6 matscipy==1.3.1 \
	fsspec==2026.9.0 hydra-core==1.3.8
BENCH_STAMP := $(VENV)/.installed-bench-deps

bench-deps: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps $(BENCH_NODEPS)
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(BENCH_DEPS)
	touch $@

# Every performance benchmark (ingest, neighbour lists, splits, PaiNN throughput against
# schnetpack, mft step, xTB labelling, collapse measures) in one table; writes results/perf.json.
# perf-quick: small sizes, under 10 minutes on 2 cores; perf: full sizes, about half an hour.
perf: $(BENCH_STAMP)
	$(BIN)/python benchmarks/perf.py --data-root $(DATA)

perf-quick: $(BENCH_STAMP)
	$(BIN)/python benchmarks/perf.py --data-root $(DATA) --quick

# MACE lives in its own environment: mace-torch 0.3.16 pins e3nn==0.4.4 (its .model files are
# pickles that e3nn >= 0.5.6 cannot read), while sevenn 0.13 refuses e3nn < 0.5 at import.
# test-mace runs the MACE tests and the core they touch (checkpoints, strategies, the registry
# listing, the model contract) there; the MACE tests skip in the main environment.
MACE_VENV ?= .venv-mace
MACE_BIN := $(MACE_VENV)/bin
MACE_EXTRAS := qm9,dev,mace
MACE_STAMP := $(MACE_VENV)/.installed-$(subst $(comma),-,$(MACE_EXTRAS))
MACE_TESTS := tests/models/test_mace.py tests/training/test_mace_train.py tests/models/test_checkpoint.py \
	tests/models/test_checkpoint_cli.py tests/models/test_painn_contract.py tests/training/test_strategies.py

setup-mace: $(MACE_STAMP)

$(MACE_BIN)/python:
	$(PYTHON) -m venv $(MACE_VENV)

$(MACE_STAMP): pyproject.toml | $(MACE_BIN)/python
	$(MACE_BIN)/pip install -q "$(TORCH_SPEC)"
	$(MACE_BIN)/pip install -q "$(TORCH_SPEC)" -e ".[$(MACE_EXTRAS)]"
	touch $@

test-mace: $(MACE_STAMP)
	$(MACE_BIN)/python -m pytest -q $(MACE_TESTS)

clean:
	rm -rf $(VENV) $(MACE_VENV) build *.egg-info
