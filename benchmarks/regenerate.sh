#!/usr/bin/env bash
# Regenerate every committed reference result from a clean checkout, then the example report
# and the README's findings block from them. Run on a quiet machine (nothing else running):
#   bash benchmarks/regenerate.sh [MACHINE_LABEL]
# About 55 minutes on a 2-core VM, the trained examples included: an estimate, not yet timed in
# one run (45 with the streaming suite, about 10; the prediction's check adds about 10; 34 measured
# on Zen 4 before both). Each
# file records the commit it was made at; commit them together afterwards. The example report and the
# README's answer block are written from the same files `tox -e report` names.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "regenerate: the working tree has uncommitted changes: commit first, so the results" \
       "name a commit that holds the code that made them" >&2
  exit 2
fi
machine=${1:?give the machine a label: bash benchmarks/regenerate.sh LABEL}
rnnbench=${RNNBENCH:-.tox/stack/bin/rnnbench}
export RNNBENCH_MACHINE="$machine"  # the label of every file below, the counted sweep's too
cpu=results/cpu-2core
$rnnbench bench --suite quick --out "$cpu/bench-quick.json" --overwrite --machine "$machine"
$rnnbench bench --suite full --out "$cpu/bench-full.json" --overwrite --machine "$machine"
$rnnbench bench --suite streaming --out "$cpu/bench-streaming.json" --overwrite --machine "$machine"
$rnnbench parallel-in-time --sweep default --json "$cpu/parallel-in-time.json"
PYTHONPATH=. .tox/stack/bin/python benchmarks/parallel_in_time_probe.py --cost-only --no-before \
  --hidden 32,64,128,256 --budget 3 --json "$cpu/parallel-in-time-iteration-cost.json" \
  > "$cpu/parallel-in-time-iteration-cost.txt"
# the prediction checked against measurement: predicted then timed (suite prediction.toml, the
# trained examples, a gain ladder past LLE = 0), the prediction's own seconds; about 10 minutes
PYTHONPATH=. .tox/stack/bin/python benchmarks/prediction_check.py --out "$cpu/prediction"
$rnnbench selfcheck --json "$cpu/selfcheck.json" || echo "selfcheck: a figure outside its bound (recorded in the file)" >&2
$rnnbench parity --report results/cpu-reference > /dev/null
RNNBENCH="$rnnbench" bash benchmarks/trained/regenerate.sh "$machine"
$rnnbench report "$cpu/bench-full.json" "$cpu/bench-streaming.json" results/cpu-reference/parity.json \
  "$cpu/parallel-in-time.json" "$cpu/prediction/bench-prediction.json" results/trained \
  --out results/report --readme README.md
