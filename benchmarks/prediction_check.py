"""The prediction checked against measurement on this machine, in one command (about 10
minutes on 2 cores; benchmarks/regenerate.sh runs it):

    .tox/stack/bin/python benchmarks/prediction_check.py [--out DIR] [--quick]

1. the suite benchmarks/suites/prediction.toml: every cell at H = 32, 64, 128 and T = 64, 256,
   1024, newton and quasi-newton predicted then timed beside the step loop (`rnnbench bench`);
2. the trained examples (benchmarks/trained/models/*_membrane.pt, srnn_digits.keras) the same
   way (`rnnbench bench --model`, torch-cpu, T = 64, 256, 1024);
3. models of growing gain up to and past LLE = 0 (R x gain, each cell, T = 256): predicted
   (`parallel-in-time --predict`), then run (`parallel-in-time`): where non-convergence is
   predicted the run must not solve it;
4. the prediction's own time for H = 32 to 256 (`parallel-in-time --predict`, each cell);
then `rnnbench report` of it all into DIR/report and a summary (DIR/summary.json, printed):
the held-out cases within 2x and the median |log error| against the target, the break-even T
predicted (the median of each series' cases, and each case's own) against measured, the chaotic
ladder's agreement, the prediction's seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINED = ("rnn_membrane.pt", "gru_membrane.pt", "lstm_membrane.pt", "srnn_digits.keras")
GAINS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
CELLS = ("rnn", "gru", "lstm")


def rnnbench(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "harness", *argv]
    print("$ rnnbench " + " ".join(argv), flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"rnnbench {' '.join(argv)} failed:\n{done.stderr}")
    return done


def suite(out: Path, quick: bool) -> list[Path]:
    path = out / "bench-prediction.json"
    argv = ["bench", "--suite", "benchmarks/suites/prediction.toml", "--out", str(path)]
    if quick:
        argv += ["--only", "hidden=32"]
    rnnbench(*argv, "--overwrite")
    return [path]


def trained(out: Path, quick: bool) -> list[Path]:
    paths = []
    for name in TRAINED[:1] if quick else TRAINED:
        path = out / f"bench-{Path(name).stem}.json"
        model = f"benchmarks/trained/models/{name}"
        rnnbench(
            "bench",
            "--model",
            model,
            "--backends",
            "torch-cpu",
            "--batch",
            "1",
            "--steps",
            "64,256,1024",
            "--out",
            str(path),
            "--overwrite",
        )
        paths.append(path)
    return paths


def ladder(out: Path, quick: bool) -> tuple[list[Path], list[dict]]:
    """Each (cell, gain): predicted, then run with the engine's limit T + 1."""
    paths, rows = [], []
    common = ["--hidden", "32", "--input", "8", "--steps", "256", "--dtype", "float32"]
    common += ["--framework", "torch", "--threads", "1", "--max-iter", "257"]
    for cell in CELLS[:1] if quick else CELLS:
        for gain in GAINS:
            model = ["--cell", cell, "--gain", str(gain), *common]
            predicted_path = out / f"predict-{cell}-g{gain:g}.json"
            rnnbench("parallel-in-time", *model, "--predict", "--json", str(predicted_path))
            prediction = json.loads(predicted_path.read_text())["prediction"]
            for method in ("newton", "quasi-newton"):
                path = out / f"solve-{cell}-g{gain:g}-{method}.json"
                rnnbench("parallel-in-time", *model, "--method", method, "--json", str(path))
                record = json.loads(path.read_text())
                said = next(
                    s for s in prediction["solves"] if s["method"] == method and s["steps"] == 256
                )
                solved = bool(record["converged"]) and all(c["passed"] for c in record["parity"])
                rows.append(
                    {
                        "cell": cell,
                        "gain": gain,
                        "method": method,
                        "lle": prediction["lle"],
                        "predicted_converges": said["iterations"] is not None,
                        "solved": solved,
                        "predicted_iterations": said["iterations"],
                        "iterations": record["iterations"],
                    }
                )
                paths.append(path)
    return paths, rows


def prediction_seconds(out: Path, quick: bool) -> list[dict]:
    rows = []
    for cell in CELLS[:1] if quick else CELLS:
        for hidden in (32, 256) if quick else (32, 64, 128, 256):
            path = out / f"timing-{cell}-{hidden}.json"
            started = time.perf_counter()
            rnnbench(
                "parallel-in-time",
                "--cell",
                cell,
                "--hidden",
                str(hidden),
                "--input",
                str(hidden),
                "--steps",
                "1024",
                "--dtype",
                "float32",
                "--framework",
                "torch",
                "--predict",
                "--json",
                str(path),
            )
            wall = time.perf_counter() - started
            made = json.loads(path.read_text())["prediction"]["seconds"]
            rows.append({"cell": cell, "hidden": hidden, "prediction_s": made, "command_s": wall})
    return rows


def summary(files: list[Path], ladder_rows: list[dict], seconds: list[dict]) -> dict:
    sys.path.insert(0, str(ROOT))
    from harness.analysis import prediction
    from harness.analysis.report import analysed

    _, result = analysed([str(f) for f in files])
    timed = list(result.parallel_in_time.timed) if result.parallel_in_time else []
    timed += [t for m in result.models for t in m.parallel_in_time]  # bench --model
    rows = prediction.compared(timed)
    held = prediction.summary(rows)
    breaks = prediction.break_evens(timed)
    misses = [
        f"{r.solve.model or 'seeded'} {r.solve.cell} {r.solve.mode} H={r.solve.hidden} "
        f"T={r.solve.steps}: {r.error:.2f}x, {r.missed}"
        for r in rows
        if r.missed
    ]
    both = [b for b in breaks if b.ratio is not None]
    agree = [r for r in ladder_rows if r["predicted_converges"] == r["solved"]]
    return {
        "held_out": dataclasses.asdict(held) if held else None,
        "misses": misses,
        "break_even": [dataclasses.asdict(b) for b in breaks],
        "break_even_within_2x": f"{sum(b.within for b in both)} of {len(both)}",
        "break_even_each_within_2x": (
            f"{sum(b.within_each() for b in both)} of {sum(len(b.predicted_each) for b in both)}"
        ),
        "ladder": ladder_rows,
        "ladder_agrees": f"{len(agree)} of {len(ladder_rows)}",
        "prediction_seconds": seconds,
        "slowest_prediction_s": max((s["prediction_s"] for s in seconds), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/prediction-check")
    parser.add_argument("--quick", action="store_true", help="one H, one model, one cell")
    args = parser.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files = suite(out, args.quick) + trained(out, args.quick)
    solved, ladder_rows = ladder(out, args.quick)
    seconds = prediction_seconds(out, args.quick)
    rnnbench("report", *map(str, files + solved), "--out", str(out / "report"))
    found = summary(files + solved, ladder_rows, seconds)
    found["wall_s"] = time.perf_counter() - started
    (out / "summary.json").write_text(json.dumps(found, indent=1, default=str) + "\n")
    held = found["held_out"] or {}
    print(
        f"held-out cases: {held.get('cases')}, within 2x: {held.get('within_2x', math.nan):.0%}, "
        f"median |log error| {held.get('median_abs_log_error', math.nan):.3f} "
        f"(target met: {held.get('met')})"
    )
    print(
        f"break-even T within 2x: {found['break_even_within_2x']} (the median of each series' "
        f"cases); each case's own: {found['break_even_each_within_2x']}"
    )
    print(f"chaotic ladder, predicted convergence = the run's: {found['ladder_agrees']}")
    print(f"slowest prediction: {found['slowest_prediction_s']:.2f} s")
    for miss in found["misses"]:
        print(f"  missed: {miss}")
    print(f"wrote {out / 'summary.json'} and {out / 'report'} in {found['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
