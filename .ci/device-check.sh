#!/usr/bin/env bash
# The device machine's check (one GPU, torch + CuPy, no TensorFlow): the GPU tests (torch-cuda
# parity and training, the reference on CuPy, BPTT checks), the parity report with CUDA,
# the TF32 variant's distance from float32, and the gpu benchmark suite with its report.
# Results land in $OUT (at most 8 files come back: keep the list short).
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests -k "cuda or cupy or training or gradcheck" 2>&1 \
  | tail -25 | tee "$OUT/pytest.txt"
python3 -m harness parity --report "$OUT/parity" \
  --backends numpy,torch-cpu,torch-cuda,ort-direct-cpu,ort-torchscript-cpu,ort-direct-cuda \
  > "$OUT/parity.log" 2>&1; echo "parity rc=$?" | tee -a "$OUT/parity.log"
python3 -m harness parity --backends torch-cuda-tf32 --dtype float32 --no-training \
  --json "$OUT/tf32.json" > "$OUT/tf32.log" 2>&1; echo "tf32 parity rc=$? (1 expected)" | tee -a "$OUT/tf32.log"
grep -E "grad weights|^torch-cuda-tf32 +lstm +float32 +y" "$OUT/tf32.log" | head -8
python3 -m harness bench --suite gpu --out "$OUT/bench-gpu.json" --machine "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr " " -)" \
  2>/dev/null | tail -60 > "$OUT/bench-gpu.txt"; echo "bench rc=$?"
