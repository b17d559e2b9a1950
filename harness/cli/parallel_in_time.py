"""`rnnbench parallel-in-time`: solve a model's recurrence for every step at once by Newton's
method in time, next to its largest Lyapunov exponent, and hold the result to the sequential run.

Exit 0: converged and equal to the sequential float64 run at the dtype's parity tolerance.
Exit 1: not converged (max-iter reached or a non-finite value), or converged to something else.
Exit 2: bad input (one line).

With --predict, it solves nothing: it prints the prediction (harness/predict) of each method at
the model's T and at a grid of T (iterations from the model's largest Lyapunov exponent by the
sweep's law, work, time per iteration and the step loop's time probed here, the ratio and the
break-even T), in seconds. A solve that is run is predicted first, then timed against the step
loop in interleaved rounds, and the run ends with a one-line verdict from that ratio's interval.

With --sweep GRID (a TOML file's [sweep] table, or "default"), it runs a grid of cells, methods,
T and gains instead (harness/sweeps/parallel_in_time.py) and writes the counts to --json:
iterations, Lyapunov exponents, work and depth. Its rows are measurements of the method, exit 0
once the document is written: a solve that does not converge, or whose change between iterates falls
under tol while it is still off the sequential run (a slow contraction near LLE = 0), is a
row that says so, not a failure of the sweep.
"""

from __future__ import annotations

import math
import time

from harness import registry
from harness.atomic import write_text_atomic
from harness.cli import parallel_in_time_inputs, parallel_in_time_predict
from harness.cli.errors import add_memory_budget, require
from harness.json_values import nulls_for_nonfinite
from harness.output_paths import FILE
from harness.parity.checks import compare_with_sequential
from harness.records.parallel_in_time import SolveDocument, SweepRow, VersusStepLoop, dumps
from harness.records.prediction import PredictedSolve
from harness.terminal import say


def add_parser(sub) -> None:
    p = sub.add_parser(
        "parallel-in-time", help="Newton's method over the whole sequence, its Lyapunov exponent"
    )
    model = p.add_argument_group("model (one of --model, --spec or --cell)")
    model.add_argument(
        "--model",
        "--onnx",
        dest="model",
        metavar="FILE",
        help="your model: ONNX (native nodes), Keras .keras/.h5, TorchScript, ExportedProgram "
        ".pt2, or a state_dict with --spec; checked as `parity --model` checks it first",
    )
    add_memory_budget(model)
    model.add_argument("--spec", help="a model spec (.toml/.json), or what a state_dict holds")
    model.add_argument("--weights", help="canonical weights (.npz) for --spec; else seeded init")
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
    p.add_argument(
        "--threads",
        help="threads of the solve's and the step loop's library (default: the library's own)",
    )
    p.add_argument(
        "--predict",
        action="store_true",
        help="predict each method's iterations and time against the step loop, without solving",
    )
    p.add_argument(
        "--law",
        metavar="SWEEP.json",
        help="the sweep whose iteration law to predict with (default: the committed one)",
    )
    p.set_defaults(run=run, outputs={"json": FILE})


def run(args) -> int:
    if args.sweep:
        return run_sweep(args)
    options = parallel_in_time_inputs.solve_options(args)
    spec, weights, source = parallel_in_time_inputs.model_from_args(args, options["dtype"])
    x = parallel_in_time_inputs.input_sequence(args, spec, options["dtype"])
    h0, c0 = (
        parallel_in_time_inputs.initial_state(args, name, spec, x.shape[1]) for name in ("h0", "c0")
    )
    parallel_in_time_predict.set_threads(args, options)
    if args.predict:
        return parallel_in_time_predict.run_predict(args, spec, weights, source, x, options)
    require({"scipy": "scipy"}, "report", "rnnbench parallel-in-time's verdict")
    prediction, note = _predicted(spec, weights, x, options, args)
    record, failure = _solve(spec, weights, source, x, h0, c0, options)
    versus = None if failure else _versus_loop(spec, weights, x, h0, c0, options)
    record = record.model_copy(
        update={"prediction": prediction, "prediction_note": note, "versus_step_loop": versus}
    )
    _print(record, failure)
    if args.json:
        write_text_atomic(args.json, dumps(record))
        say(f"wrote {args.json}")
    print(parallel_in_time_predict.verdict_line(record))
    return 1 if failure else 0


def _predicted(spec, weights, x, options, args) -> tuple[PredictedSolve | None, str]:
    """The chosen method at the model's T, predicted before the solve; (None, why) where no
    prediction can be made."""
    from harness.predict.errors import CannotPredict

    try:
        made = parallel_in_time_predict.predict(
            spec, weights, x, options, args, (options["method"],), ()
        )
    except CannotPredict as exc:
        return None, str(exc)
    return made.solves[0], f"{made.law_source}, made in {made.seconds:.1f} s"


def _versus_loop(spec, weights, x, h0, c0, options) -> VersusStepLoop:
    """The solve timed against the backend's step loop, round by round."""
    from harness.predict import versus_loop

    solve, _ = _runner(spec, weights, x, h0, c0, options)
    backend = parallel_in_time_predict.backend_of(options)
    loop = versus_loop.loop_runner(spec, weights, x, backend)
    return VersusStepLoop.model_validate(
        {"backend": backend, **versus_loop.time_against_loop(solve, loop)}
    )


def _runner(spec, weights, x, h0, c0, options):
    """(the solve, its outputs' fetch) by the options' method, tolerance, device and framework."""
    return registry.parallel_in_time().make_runner(
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


def _solve(spec, weights, source, x, h0, c0, options) -> tuple[SolveDocument, str | None]:
    """The record of one parallel-in-time solve, held to the sequential run, and its failure
    (None: converged and equal to it)."""
    pt = registry.parallel_in_time()
    lle = pt.model_lyapunov(spec, weights, x, h0, c0)
    runner, fetch = _runner(spec, weights, x, h0, c0, options)
    started = time.perf_counter()
    result = runner()
    seconds = time.perf_counter() - started
    record = _record(spec, source, x, options, lle, result, seconds)
    if result.outputs is not None:
        outputs, _ = fetch(result)
        reference = pt.sequential_reference(spec, weights, x, h0, c0)
        error, comparisons = compare_with_sequential(outputs, reference, spec.dtype)
        record["max_abs_error"] = error
        record["parity"] = [c.as_dict() for c in comparisons]
    typed = SolveDocument.model_validate(nulls_for_nonfinite(record))
    return typed, _failure(typed)


def run_sweep(args) -> int:
    """The grid's rows, written to --json; one line per row on stdout."""
    from harness.cli.errors import progress
    from harness.machine.environment import collect_environment
    from harness.sweeps.parallel_in_time import load_grid, sweep

    parallel_in_time_inputs.check_sweep_args(args)
    doc = sweep(load_grid(args.sweep), collect_environment(), progress)
    progress("")
    for row in doc.rows:
        print(_sweep_line(row))
    write_text_atomic(args.json, dumps(doc))
    say(f"{len(doc.rows)} rows in {doc.wall_s or 0:.0f} s; wrote {args.json}")
    return 0


def _lle(value: float | None) -> str:
    return "not finite" if value is None else f"{value:+.3f}"


def _sweep_line(row: SweepRow) -> str:
    where = f"{row.cell} {row.method} H={row.hidden} T={row.steps} g={row.gain:g}"
    if row.status == "skipped":
        return f"{where}: skipped ({row.reason})"
    if not row.converged:
        return f"{where}: lle {_lle(row.lle)}, not converged ({row.reason})"
    off = ""
    if row.off_run:
        error = row.max_abs_error or math.nan
        off = f", stopped off the sequential run by {error:.1e} (parity failed)"
    return (
        f"{where}: lle {_lle(row.lle)}, {row.iterations} iterations, "
        f"work x{row.work_multiplier or math.nan:.3g}, depth {row.depth} of {row.steps}{off}"
    )


def _record(spec, source, x, options, lle, result, seconds) -> dict[str, object]:
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
        "iteration": registry.parallel_in_time().describe_iteration(
            options["method"], options["framework"], options["device"]
        ),
    }


def _failure(record: SolveDocument) -> str | None:
    if not record.converged:
        return f"not converged: {record.reason}"
    failed = [c for c in record.parity if not c.passed]
    if failed:
        return (
            f"converged in {record.iterations} iterations but differs from the sequential "
            f"run: {failed[0].message}"
        )
    return None


def _print(record: SolveDocument, failure: str | None) -> None:
    model = record.model
    say(
        f"{model['cell']} H={model['hidden_size']} I={model['input_size']} "
        f"L={model['num_layers']}{' bidirectional' if model['bidirectional'] else ''} "
        f"({record.source}), T={record.steps} B={record.batch} {record.dtype} "
        f"{record.device}/{record.framework}"
    )
    print(f"iteration: {record.iteration}")
    lle = "not finite" if record.lle is None else f"{record.lle:+.4f}"
    print(f"largest Lyapunov exponent ({record.lle_of}): {lle} per step")
    shown = record.residuals[:12]
    residuals = " ".join("not finite" if r is None else f"{r:.1e}" for r in shown)
    more = " ..." if len(record.residuals) > 12 else ""
    print(f"{record.method} residuals (max |change|): {residuals}{more}")
    if failure:
        say(f"FAIL {failure}", err=True)
        return
    print(
        f"converged in {record.iterations} iterations (tol {record.tol:g}, "
        f"{record.seconds:.3g} s); max |error| vs the sequential run "
        f"{record.max_abs_error or 0:.2e}: parity passed"
    )
