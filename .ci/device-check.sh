#!/usr/bin/env bash
# The prepared GPU run (one NVIDIA GPU with torch + CuPy, no TensorFlow), sized for about
# 7 minutes on an H100 so that it can run twice in a quarter of an hour:
#   1. the GPU tests (torch-cuda parity and training, the reference on CuPy, BPTT checks,
#      parallel-in-time on CUDA);
#   2. the parity matrix with torch-cuda and ONNX Runtime's CUDA rows (the direct and
#      torchscript exports; TensorRT stays a skip with its reason: its libraries are GBs),
#      and the TF32 variant's distance from float32;
#   3. the gpu benchmark suite (torch-cuda eager and CUDA graphs, CuPy, ORT CUDA, cuBLAS
#      products, probes, minGRU, Newton in time), resumable: a second run finishes it.
# Environment:
#   OUT          where results go (the device tool sets it; at most 8 files come back: here
#                log.txt, parity/parity.{md,json}, parity/tf32.json, bench-gpu.{json,txt})
#   RESUME_FROM  a bench-gpu.json brought back by an earlier run: finished, not redone
#   BENCH_S      seconds the suite may take in this run (default 330): what is left is
#                finished by the next run with RESUME_FROM
#   RNNBENCH_GIT_COMMIT  the commit the copied tree is at (the device machine gets no .git):
#                recorded in every results file as its provenance
#   DRY_RUN=1    on a machine without a GPU: the same steps, everything GPU skips with its
#                reason (this is how CI-side checks of this script run)
# onnxruntime-gpu travels in parts (../shared/tools/gpu-wheel-parts): when .gpuwheels/p* are
# all there, they are joined, checked and installed into /tmp/ortgpu first.
set -uo pipefail
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT/parity"
py=${PYTHON:-python3}
LOG=$OUT/log.txt
step() { echo "== $* ($(date -u +%H:%M:%S))" | tee -a "$LOG"; }

if [ -d .gpuwheels/p1 ] && [ -z "${DRY_RUN:-}" ]; then
  step "onnxruntime-gpu from $(ls -d .gpuwheels/p* | wc -l) parts"
  whl=/tmp/$(cat .gpuwheels/name 2>/dev/null || echo onnxruntime_gpu.whl)
  cat $(ls -d .gpuwheels/p* | sort -V | sed 's|$|/part|') > "$whl" &&
    $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/ortgpu "$whl" &&
    export PYTHONPATH=/tmp/ortgpu:$PYTHONPATH
  # CUDA 13's libraries sit in the nvidia-* packages, off the loader path: preload them
  $py -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())" \
    2>&1 | tee -a "$LOG"
fi

step "device"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"; } \
  | tee -a "$LOG"
machine=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' - )
machine=${machine:-$(hostname)}

step "GPU tests"
timeout 150 $py -m pytest -q -p no:cacheprovider tests -k "cuda or cupy or gpu or tensorrt" 2>&1 \
  | tail -30 | tee -a "$LOG"

step "parity with CUDA"
$py -m harness parity --report "$OUT/parity" --no-training \
  --backends numpy,torch-cpu,torch-cuda,ort-direct-cpu,ort-direct-cuda,ort-torchscript-cuda \
  2>&1 | tail -40 >> "$LOG"
echo "parity rc=${PIPESTATUS[0]}" | tee -a "$LOG"
$py -m harness parity --backends torch-cuda-tf32 --dtype float32 --no-training \
  --json "$OUT/parity/tf32.json" 2>&1 | tail -12 >> "$LOG"
echo "tf32 parity rc=${PIPESTATUS[0]} (1 expected: TF32 is outside float32 parity)" | tee -a "$LOG"

step "gpu suite for ${BENCH_S:-330} s"
[ -n "${RESUME_FROM:-}" ] && cp "$RESUME_FROM" "$OUT/bench-gpu.json"
timeout --signal=INT "${BENCH_S:-330}" $py -m harness bench --suite gpu \
  --out "$OUT/bench-gpu.json" --resume --machine "$machine" > "$OUT/bench-gpu.txt" 2>&1
echo "bench rc=$? (124: out of time; run again with RESUME_FROM=$OUT/bench-gpu.json)" \
  | tee -a "$OUT/bench-gpu.txt"
tail -5 "$OUT/bench-gpu.txt" | tee -a "$LOG"
step "done"
