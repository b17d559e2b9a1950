#!/usr/bin/env bash
# The trained examples' results, from the committed models (benchmarks/trained/models; retrain
# them first with `python benchmarks/trained/train.py` to change them): for each model in
# results/trained/training.json, parity of the trained file against its ONNX export, the
# bench --model timings of the trained weights and of the initial ones (torch only: the step
# loop, the product and parallel in time). About 10 minutes on 2 cores. Run from a clean
# checkout, as benchmarks/regenerate.sh does (it calls this):
#   bash benchmarks/trained/regenerate.sh [MACHINE_LABEL]
set -euo pipefail
cd "$(dirname "$0")/../.."
machine=${1:-$(hostname)}
rnnbench=${RNNBENCH:-.tox/stack/bin/rnnbench}
python=${PYTHON:-.tox/stack/bin/python}
out=results/trained
names=$($python -c "import json; print(' '.join(m['name'] for m in json.load(open('$out/training.json'))['models']))")
for name in $names; do
  files=$($python -c "import json; m=[m for m in json.load(open('$out/training.json'))['models'] if m['name']=='$name'][0]['files']; print(m['trained'], m['initial'], m['onnx'])")
  set -- $files
  $rnnbench parity --model "$1" --against "$3" --json "$out/parity-$name.json" > /dev/null
  $rnnbench bench --model "$1" --out "$out/bench-$name.json" --overwrite --machine "$machine"
  $rnnbench bench --model "$2" --backends torch-cpu --out "$out/bench-${name}_init.json" \
    --overwrite --machine "$machine"
done
