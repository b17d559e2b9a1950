"""`rnnbench parallel-in-time`: solve a model's recurrence for every step at once by Newton's
method in time, next to its largest Lyapunov exponent, and hold the result to the sequential run.

Exit 0: converged and equal to the sequential float64 run at the dtype's parity tolerance.
Exit 1: not converged (max-iter reached or a non-finite value), or converged to something else.
Exit 2: bad input (one line).

With --sweep GRID (a TOML file's [sweep] table, or "default"), it runs a grid of cells, methods,
T and gains instead (harness/bench/pit_sweep.py) and writes the counts to --json: iterations,
Lyapunov exponents, work and depth. Its rows are measurements of the method, exit 0 once the
document is written: a solve that does not converge, or whose change between iterates falls
under tol while it is still off the sequential run (a slow contraction near LLE = 0), is a
row that says so, not a failure of the sweep.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli.errors import UsageError
from harness.model.spec import Cell, ModelSpec, load_spec
from harness.model.weights import init_weights, load_weights

METHODS = ("newton", "quasi-newton")
DEFAULT_TOL = {"float64": 1e-12, "float32": 1e-6}
DEFAULT_MAX_ITER = {"newton": 100, "quasi-newton": 1000}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "parallel-in-time", help="Newton's method over the whole sequence, its Lyapunov exponent"
    )
    model = p.add_argument_group("model (one of --spec, --onnx or --cell)")
    model.add_argument("--spec", help="a model spec (.toml/.json)")
    model.add_argument("--weights", help="canonical weights (.npz) for --spec; else seeded init")
    model.add_argument("--onnx", help="an ONNX file with native RNN/LSTM/GRU nodes")
    model.add_argument("--cell", help="rnn | lstm | gru (default gru)")
    model.add_argument("--hidden", default="32", help="hidden size H (default 32)")
    model.add_argument("--input", default="8", help="input size I (default 8)")
    model.add_argument("--gain", default="1", help="multiply every R by this (default 1)")
    model.add_argument("--seed", default="0", help="seed of the weights and generated inputs")
    data = p.add_argument_group("inputs")
    data.add_argument("--inputs", help="x as .npy, [T, B, I] time-major like ONNX")
    data.add_argument("--steps", help="T of generated inputs x ~ N(0, 1) (default 256)")
    data.add_argument("--batch", help="B of generated inputs (default 1)")
    data.add_argument("--h0", help="initial h as .npy [L*D, B, H] (default zeros)")
    data.add_argument("--c0", help="initial c as .npy [L*D, B, H], LSTM (default zeros)")
    p.add_argument("--method", default="newton", help="newton | quasi-newton (default newton)")
    p.add_argument(
        "--tol", help="stop when max |s^(k) - s^(k-1)| <= tol (default 1e-12 float64, 1e-6 float32)"
    )
    p.add_argument("--max-iter", help="give up after this many (default 100 newton, 1000 quasi)")
    p.add_argument("--dtype", default="float64", help="float64 | float32 (default float64)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--framework", help="numpy | torch (default numpy on cpu, torch on cuda)")
    p.add_argument("--json", help="write the record here (atomically)")
    p.add_argument(
        "--sweep", help="GRID.toml | default: iterations, work and depth over a grid (--json)"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    if args.sweep:
        return run_sweep(args)
    options = _options(args)
    spec, weights, source = _model(args, options["dtype"])
    x = _inputs(args, spec, options["dtype"])
    h0, c0 = (_state(args, name, spec, x.shape[1]) for name in ("h0", "c0"))
    pt = registry.parallel_in_time()
    lle = pt.model_lyapunov(spec, weights, x, h0, c0)
    runner, fetch = pt.make_runner(
        spec,
        weights,
        x,
        options["method"],
        options["tol"],
        options["max_iter"],
        options["device"],
        options["framework"],
        h0,
        c0,
    )
    started = time.perf_counter()
    result = runner()
    seconds = time.perf_counter() - started
    record = _record(spec, source, x, options, lle, result, seconds)
    if result.outputs is not None:
        outputs, _ = fetch(result)
        reference = pt.sequential_reference(spec, weights, x, h0, c0)
        error, comparisons = pt.compare_with_sequential(outputs, reference, spec.dtype)
        record["max_abs_error"] = _finite(error)
        record["parity"] = [c.as_dict() for c in comparisons]
    failure = _failure(result, record)
    _print(record, failure)
    if args.json:
        write_text_atomic(args.json, json.dumps(_json_safe(record), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 1 if failure else 0


SWEEP_OWNS = ("spec", "weights", "onnx", "cell", "inputs", "steps", "batch", "h0", "c0", "tol")
SWEEP_OWNS += ("max_iter", "framework")
SWEEP_DEFAULTS = {"hidden": "32", "input": "8", "gain": "1", "seed": "0", "method": "newton"}
SWEEP_DEFAULTS |= {"dtype": "float64", "device": "cpu"}


def run_sweep(args) -> int:
    """The grid's rows, written to --json; one line per row on stdout."""
    from harness.bench import metadata, pit_sweep
    from harness.cli.errors import progress

    given = [n for n in SWEEP_OWNS if getattr(args, n) is not None]
    given += [n for n, v in SWEEP_DEFAULTS.items() if getattr(args, n) != v]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"--sweep runs its own grid: drop {flag} (set it in the grid's TOML)")
    if not args.json:
        raise UsageError("--sweep needs --json FILE: the sweep's rows go there")
    doc = pit_sweep.sweep(pit_sweep.load_grid(args.sweep), metadata.collect_environment(), progress)
    progress("")
    for row in doc["rows"]:
        print(_sweep_line(row))
    write_text_atomic(args.json, pit_sweep.dumps(doc))
    print(f"{len(doc['rows'])} rows in {doc['wall_s']:.0f} s; wrote {args.json}")
    return 0


def _sweep_line(row: dict) -> str:
    where = f"{row['cell']} {row['method']} H={row['hidden']} T={row['steps']} g={row['gain']:g}"
    if row["status"] == "skipped":
        return f"{where}: skipped ({row['reason']})"
    if not row["converged"]:
        return f"{where}: lle {row['lle']:+.3f}, not converged ({row['reason']})"
    off = ""
    if row["parity_passed"] is False:
        error = row["max_abs_error"] or math.nan
        off = f", stopped off the sequential run by {error:.1e} (parity failed)"
    return (
        f"{where}: lle {row['lle']:+.3f}, {row['iterations']} iterations, "
        f"work x{row['work_multiplier']:.3g}, depth {row['depth']} of {row['steps']}{off}"
    )


def _options(args) -> dict:
    for name, allowed in (
        ("method", METHODS),
        ("dtype", ("float64", "float32")),
        ("device", ("cpu", "cuda")),
    ):
        if getattr(args, name) not in allowed:
            raise UsageError(f"--{name} {getattr(args, name)}: allowed {', '.join(allowed)}")
    framework = args.framework or ("torch" if args.device == "cuda" else "numpy")
    if framework not in ("numpy", "torch"):
        raise UsageError(f"--framework {framework}: allowed numpy, torch")
    tol = DEFAULT_TOL[args.dtype] if args.tol is None else _number("--tol", args.tol, float, 0)
    max_iter = DEFAULT_MAX_ITER[args.method]
    if args.max_iter is not None:
        max_iter = _number("--max-iter", args.max_iter, int, 1)
    return {
        "method": args.method,
        "dtype": args.dtype,
        "device": args.device,
        "framework": framework,
        "tol": tol,
        "max_iter": max_iter,
    }


def _number(option: str, text: str, kind: type, minimum: float):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "an integer" if kind is int else "a finite number"
        raise UsageError(f"{option} {text}: allowed {what} >= {minimum}")
    return value


def _model(args, dtype: str):
    """(spec, weights, source) from --onnx, --spec (+ --weights) or --cell and sizes; cast to
    dtype, time-major, R scaled by --gain."""
    given = [name for name in ("onnx", "spec", "cell") if getattr(args, name)]
    if len(given) > 1:
        raise UsageError(f"--{given[0]} and --{given[1]} both name a model: give one")
    if args.weights and not args.spec:
        raise UsageError("--weights needs --spec: the spec says what the weights are")
    if args.onnx:
        from harness.onnx.reader import read_onnx

        weights, source = read_onnx(args.onnx).weights, f"onnx {args.onnx}"
    elif args.spec:
        spec = load_spec(args.spec)
        weights = (
            load_weights(args.weights, spec)
            if args.weights
            else init_weights(spec, _number("--seed", args.seed, int, 0))
        )
        source = f"spec {args.spec}" + (f", weights {args.weights}" if args.weights else "")
    else:
        cell = args.cell or "gru"
        if cell not in [c.value for c in Cell]:
            raise UsageError(f"--cell {cell}: allowed {', '.join(c.value for c in Cell)}")
        spec = ModelSpec(
            cell, _number("--input", args.input, int, 1), _number("--hidden", args.hidden, int, 1)
        )
        weights, source = init_weights(spec, _number("--seed", args.seed, int, 0)), "generated"
    gain = _number("--gain", args.gain, float, -math.inf)
    weights = weights.astype(dtype)
    if gain != 1:
        scale = np.asarray(gain, dtype)
        weights = weights.replace(**{k: weights[k] * scale for k in weights if k.endswith(".R")})
    spec = weights.spec.replace(batch_first=False)
    return spec, {k: weights[k] for k in weights}, source + ("" if gain == 1 else f", R x {gain}")


def _inputs(args, spec: ModelSpec, dtype: str) -> np.ndarray:
    if args.inputs:
        if args.steps or args.batch:
            raise UsageError("--inputs gives T and B: drop --steps/--batch")
        x = _load_npy("--inputs", args.inputs)
    else:
        T = _number("--steps", args.steps or "256", int, 1)
        B = _number("--batch", args.batch or "1", int, 1)
        rng = np.random.default_rng(_number("--seed", args.seed, int, 0) + 1)
        x = rng.standard_normal((T, B, spec.input_size))
    if x.ndim != 3 or x.shape[2] != spec.input_size or 0 in x.shape:
        raise UsageError(
            f"--inputs has shape {x.shape}: expected [T, B, I] with I = "
            f"{spec.input_size} and T, B >= 1"
        )
    return x.astype(dtype)


def _state(args, name: str, spec: ModelSpec, B: int):
    path = getattr(args, name)
    if path is None:
        return None
    if name == "c0" and spec.cell is not Cell.LSTM:
        raise UsageError(f"--c0 is for an LSTM; this model is {spec.cell.value}")
    state = _load_npy(f"--{name}", path)
    expected = (spec.num_layers * spec.num_directions, B, spec.hidden_size)
    if state.shape != expected:
        raise UsageError(f"--{name} has shape {state.shape}: expected [L*D, B, H] = {expected}")
    return state.astype(spec.dtype)


def _load_npy(option: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{option} {path}: not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{option} {path}: expected one floating-point array")
    if not np.isfinite(array).all():
        raise UsageError(f"{option} {path}: holds non-finite values")
    return array


def _record(spec, source, x, options, lle, result, seconds) -> dict:
    return {
        "command": "parallel-in-time",
        "model": spec.to_dict(),
        "source": source,
        "steps": x.shape[0],
        "batch": x.shape[1],
        **options,
        "lle": lle.lle,
        "lle_of": f"layer {lle.layer}, {lle.direction} direction",
        "lle_per_sample": list(lle.per_sample),
        "converged": result.converged,
        "iterations": result.iterations,
        "reason": result.reason,
        "residuals": list(result.residuals),
        "residuals_of": "layer 0, forward direction",
        "solves": [s.as_dict() for s in result.solves],
        "max_abs_error": None,
        "parity": [],
        "seconds": seconds,
    }


def _failure(result, record) -> str | None:
    if not result.converged:
        return f"not converged: {result.reason}"
    failed = [c for c in record["parity"] if not c["passed"]]
    if failed:
        return (
            f"converged in {result.iterations} iterations but differs from the sequential "
            f"run: {failed[0]['message']}"
        )
    return None


def _print(record: dict, failure: str | None) -> None:
    import sys

    model = record["model"]
    print(
        f"{model['cell']} H={model['hidden_size']} I={model['input_size']} "
        f"L={model['num_layers']}{' bidirectional' if model['bidirectional'] else ''} "
        f"({record['source']}), T={record['steps']} B={record['batch']} {record['dtype']} "
        f"{record['device']}/{record['framework']}"
    )
    print(f"largest Lyapunov exponent ({record['lle_of']}): {record['lle']:+.4f} per step")
    residuals = " ".join(f"{r:.1e}" for r in record["residuals"][:12])
    more = " ..." if len(record["residuals"]) > 12 else ""
    print(f"{record['method']} residuals (max |change|): {residuals}{more}")
    if failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return
    print(
        f"converged in {record['iterations']} iterations (tol {record['tol']:g}, "
        f"{record['seconds']:.3g} s); max |error| vs the sequential run "
        f"{record['max_abs_error']:.2e}: parity passed"
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_safe(value):
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
