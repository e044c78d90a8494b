#!/usr/bin/env bash
# The GPU checks of the evidence study, in one run that fits a 10-minute device window.
#
# Prepare on the development machine (the device machine reaches no network): a wheelhouse of
# the pure-Python dependencies that its image lacks, and the QM9 store, both git-ignored.
#   .venv/bin/pip download -d .wheels ase pymatgen monty rdkit qm9pack==1.0.3 typer rich \
#       scikit-learn scipy pandas matplotlib
#   (the device image's own CUDA torch is used; never install torch there)
# Then, with the device tool:  run  command="bash benchmarks/device_check.sh"
#                                   carry=[".wheels", "data/stores/qm9"]
# Writes its figures under $OUT (device-check.txt), each line naming the card.
set -uo pipefail
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
log="$OUT/device-check.txt"
say() { echo "$*" | tee -a "$log"; }

card=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
say "card: ${card:-none}"
[ -n "$card" ] || { say "no CUDA card: nothing to check"; exit 2; }
pip install -q --no-index --find-links .wheels ase pymatgen monty rdkit qm9pack typer rich \
    scikit-learn scipy pandas matplotlib pytest >/dev/null 2>&1 || say "wheelhouse install incomplete"
pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || say "package install failed"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$log"

# 1. the CUDA tests (about a minute)
timeout 180 python -m pytest -q -k cuda tests 2>&1 | tail -3 | tee -a "$log"

# 2. bf16 against float32 on the GPU, and the GPU against the CPU, on one short fine-tune
ac() { timeout 150 python -m atomcollapse --data-root data "$@"; }
common=(train --data qm9 --split splits/qm9/property-tail-gap --target gap --strategy finetune
        --seed 0 --pretrained pretrained/painn-qm9-xtb/checkpoint.pt --max-train 2000
        --max-eval 1000 --steps 200 --no-progress --overwrite)
for mode in "cpu --no-bf16" "cuda --no-bf16" "cuda --bf16"; do
  set -- $mode
  t0=$(date +%s.%N)
  ac "${common[@]}" --device "$1" "$2" --out "$OUT/run-$1$2" >/dev/null 2>&1
  t1=$(date +%s.%N)
  python - "$OUT/run-$1$2/metrics.json" "$1$2" "$t0" "$t1" <<'PY' | tee -a "$log"
import json, sys
m = json.load(open(sys.argv[1]))
p = m["partitions"]
print(f"{sys.argv[2]}: val MAE {m['best_val_mae'] * 27211.386:.2f} meV, "
      f"OOD {p['ood_test']['mae_report']:.2f} meV, {float(sys.argv[4]) - float(sys.argv[3]):.1f} s")
PY
done

# 3. training throughput on the GPU (our PaiNN; schnetpack too when it is in the wheelhouse)
timeout 150 python benchmarks/bench_throughput.py --device cuda --no-schnetpack --n 2000 \
    --steps 20 --rounds 3 --warmup 3 2>&1 | tail -12 | tee -a "$log"

# 4. one timed evidence cell at the study's settings (gap, full training set, 2,000 steps of
#    the 100k-step schedule): steps per second on this card, to size evidence-gpu.toml
python -c "from atomcollapse.bench.spec import load_spec; from atomcollapse.bench.cells import \
toml_text; print(toml_text(load_spec('benchmarks/evidence-gpu.toml').train_table('mft')), end='')" \
    > "$OUT/evidence-train.toml"
t0=$(date +%s)
ac train --data qm9 --split splits/qm9/property-tail-gap --target gap --strategy mft --seed 0 \
    --pretrained pretrained/painn-qm9-xtb/checkpoint.pt --ff-data pretrained/qm9-xtb-2k \
    --config "$OUT/evidence-train.toml" --steps 2000 --device cuda --no-progress \
    --overwrite --out "$OUT/evidence-cell" >/dev/null 2>&1
say "evidence cell (mft, gap, 2,000 steps): $(( $(date +%s) - t0 )) s on ${card}"
