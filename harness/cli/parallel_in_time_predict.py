"""`rnnbench parallel-in-time --predict`: the prediction printed, without solving; and, for a
solve that is run, the prediction made before it and the one-line verdict after it."""

from __future__ import annotations

from harness.atomic import write_text_atomic
from harness.cli.parallel_in_time_inputs import DEFAULT_MAX_ITER, METHODS
from harness.markdown import print_table
from harness.records.parallel_in_time import PredictionDocument, SolveDocument, dumps
from harness.records.prediction import (
    CountedIterations,
    FirstIterate,
    FloorRunAt,
    PredictedSolve,
    RoundingFloor,
)
from harness.stats import format_interval, format_ratio, format_seconds
from harness.terminal import say

TABLE_STEPS = (16, 64, 256, 1024, 4096, 16384)


def limits(args) -> dict[str, int]:
    """Each method's max_iter as a run with these options would have it."""
    if args.max_iter is not None:
        return {m: int(args.max_iter) for m in METHODS}
    return dict(DEFAULT_MAX_ITER)


def set_threads(args, options: dict) -> None:
    """--threads for the solve's framework and its step loop: torch's pools, or NumPy's BLAS
    (through threadpoolctl, where installed)."""
    if args.threads is None:
        return
    from harness import registry
    from harness.cli.errors import UsageError

    try:
        count = int(args.threads)
    except ValueError:
        count = 0
    if count < 1:
        raise UsageError(f"--threads {args.threads}: allowed an integer >= 1")
    registry.get_backend(backend_of(options)).set_threads(count)
    if options["framework"] == "numpy":
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        threadpool_limits(count)


def backend_of(options: dict) -> str:
    from harness.predict.versus_loop import step_loop_backend

    return step_loop_backend(options["framework"], options["device"])


def predict(spec, weights, x, options, args, methods=METHODS, steps=TABLE_STEPS):
    from harness.model.weights import CanonicalWeights
    from harness.predict.api import predict_model

    canonical = CanonicalWeights(spec.replace(head=None), _recurrent(weights))
    return predict_model(
        canonical.spec,
        canonical,
        x,
        backend_of(options),
        steps,
        options["tol"],
        {m: limits(args)[m] for m in methods},
        methods,
        args.law,
    )


def _counted_sentence(
    counted: CountedIterations, dtype: str, newton_too: bool = False, floor: bool = False
) -> str:
    """What the model's own counting solves found, and the stall where there was one."""
    found = ", ".join(
        f"{'no convergence' if c.iterations is None else c.iterations} at T={c.steps}"
        for c in counted.counts
    )
    line = (
        f"{counted.method} iterations counted on the model ({dtype}, {counted.batch} input "
        f"columns): {found}"
    )
    longest = max((c.steps for c in counted.counts), default=None)
    if counted.float64_iterations is not None:
        line += f"; float64 took {counted.float64_iterations} at T={longest}"
    if counted.stalled:
        methods = f"{counted.method} and newton" if newton_too else counted.method
        line += (
            f": rounding stalls {dtype}'s change above tol, so past T={longest} {methods} "
            "is predicted at T + 1"
            + (
                " (newton where its own floor runs below say nothing)"
                if newton_too and floor
                else ""
            )
        )
    return line


def _unsettled(r: FloorRunAt) -> str:
    why = {"deadline": "budget spent", "non-finite": "a non-finite value", "T + 1": "T + 1 run"}
    because = why.get(r.stopped or "", "why not recorded")
    return f"still above tol after {r.run} at T={r.steps} ({because})"


def _floor_sentence(floor: RoundingFloor, dtype: str) -> str:
    """Newton's floor runs: what rounding alone costs it at each T run."""
    found = ", ".join(
        f"{r.iterations} at T={r.steps}" if r.iterations is not None else _unsettled(r)
        for r in floor.runs
    )
    return (
        f"newton from the model's sequential {dtype} states (its rounding floor, "
        f"{floor.batch} input columns): {found or 'no run afforded'}; a solve takes at least "
        "that many"
    )


def _first_iterate_sentence(first: FirstIterate, dtype: str) -> str:
    """How far the first iterate grows, against the dtype's range."""
    return (
        f"first iterate (Jacobians at s = 0, layer 0 forward, over {first.steps} steps): "
        f"newton's products grow up to e^{first.dense_log_growth:.1f} "
        f"({first.dense_per_step:+.3f} a step), quasi-newton's up to "
        f"e^{first.diagonal_log_growth:.1f}; {dtype} holds e^{first.log_limit:.1f}"
    )


def _recurrent(weights: dict) -> dict:
    return {k: v for k, v in weights.items() if not k.startswith("head")}


def run_predict(args, spec, weights, source: str, x, options: dict) -> int:
    """Print the prediction (and write it to --json); exit 0."""
    prediction = predict(spec, weights, x, options, args)
    T, B = x.shape[0], x.shape[1]
    say(
        f"{spec.cell.value} H={spec.hidden_size} I={spec.input_size} L={spec.num_layers}"
        f"{' bidirectional' if spec.bidirectional else ''} ({source}), T={T} B={B} "
        f"{spec.dtype}, predicted for {prediction.backend} without solving"
    )
    lle = "not finite" if prediction.lle is None else f"{prediction.lle:+.4f} per step"
    print(f"largest Lyapunov exponent (layer 0, forward, over {prediction.lle_steps} steps): {lle}")
    say(f"iteration laws (fitted on {prediction.law_source}):")
    for method, formula in prediction.laws.items():
        print(f"  {method}: k = {formula}")
    if prediction.counted is not None:
        newton_too = "newton" in prediction.laws
        floor = prediction.rounding_floor is not None
        print(_counted_sentence(prediction.counted, spec.dtype, newton_too, floor))
    if prediction.rounding_floor is not None:
        print(_floor_sentence(prediction.rounding_floor, spec.dtype))
    if prediction.first_iterate is not None:
        print(_first_iterate_sentence(prediction.first_iterate, spec.dtype))
    print_table(HEADER, [_row(s) for s in prediction.solves])
    for method in prediction.laws:
        at = next(s for s in prediction.solves if s.method == method and s.steps == T)
        print(f"{method} at T={T}: {_sentence(at)}")
    print(
        f"probed at T = {', '.join(map(str, prediction.probe_lengths))}; "
        f"the prediction took {prediction.seconds:.1f} s"
    )
    if args.json:
        record = PredictionDocument.model_validate(
            {
                "model": spec.to_dict(),
                "source": source,
                "steps": T,
                "batch": B,
                **options,
                "prediction": prediction,
            }
        )
        write_text_atomic(args.json, dumps(record))
        say(f"wrote {args.json}")
    return 0


HEADER = (
    "method",
    "T",
    "iterations",
    "work x",
    "one iteration",
    "solve",
    "step loop",
    "solve / loop",
    "verdict",
    "break-even T",
)


def _row(s: PredictedSolve) -> list[str]:
    converges = s.iterations is not None
    return [
        s.method,
        str(s.steps),
        str(s.iterations) if converges else "none",
        f"{s.work_multiplier:.3g}" if converges else "",
        format_seconds(s.iteration_s),
        format_seconds(s.solve_s) if s.solve_s is not None else "",
        format_seconds(s.step_loop_s),
        f"{s.ratio:.3g}x" if converges else "",
        s.verdict,
        _break_even(s),
    ]


def _break_even(s: PredictedSolve) -> str:
    if s.break_even_steps is None:
        return "none up to 65536"
    if s.wins_up_to_steps is None:
        return f"{s.break_even_steps:.0f}"
    return f"{s.break_even_steps:.0f} (wins up to {s.wins_up_to_steps:.0f})"


def _sentence(s: PredictedSolve) -> str:
    if s.iterations is None:
        return f"predicted not to converge ({s.reason})"
    return (
        f"predicted to {'win' if s.verdict == 'wins' else 'lose'}: {s.iterations} iterations, "
        f"{s.ratio:.3g}x the step loop's {format_seconds(s.step_loop_s)}; break-even T "
        f"{_break_even(s)}"
    )


def verdict_line(record: SolveDocument) -> str:
    """The run's last line: what the measured interval says, the step loop's time, and what was
    predicted before it ran."""
    timing = record.versus_step_loop
    method = record.method
    predicted = record.prediction
    said = ""
    if predicted is not None:
        said = f"; predicted {predicted.verdict}" + (
            f" ({predicted.ratio:.3g}x)" if predicted.ratio is not None else ""
        )
    if timing is None:
        return f"verdict: {method} did not solve it, so it cannot beat the step loop{said}"
    verb = {"wins": "wins", "loses": "loses", "too close to call": "is too close to call"}
    return (
        f"verdict: {method} {verb[timing.verdict]}: {format_ratio(timing.ratio_ci)} the step "
        f"loop's time; step loop ({timing.backend}) {format_interval(timing.step_loop_ci)}"
        f", solve {format_interval(timing.solve_ci)}, {timing.rounds} rounds{said}"
    )
