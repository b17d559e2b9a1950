"""`rnnbench parallel-in-time`'s command line read into what a solve takes: the options
(method, dtype, device, framework, tol, max-iter), the model (--model, --spec + --weights, or
--cell and sizes, R scaled by --gain), the inputs and initial states. Each bad value is a
UsageError of one line (exit 2)."""

from __future__ import annotations

import math

import numpy as np

from harness.cli.errors import UsageError
from harness.model.spec import Cell, ModelSpec, load_spec
from harness.model.weights import init_weights, load_weights
from harness.terminal import say

METHODS = ("newton", "quasi-newton")
DEFAULT_TOL = {"float64": 1e-12, "float32": 1e-6}
DEFAULT_MAX_ITER = {"newton": 100, "quasi-newton": 1000}
SWEEP_OWNS = (
    *("spec", "weights", "model", "cell", "inputs", "steps", "batch", "h0", "c0", "tol"),
    *("max_iter", "framework", "law", "threads"),
)
SWEEP_DEFAULTS = {"hidden": "32", "input": "8", "gain": "1", "seed": "0", "method": "newton"}
SWEEP_DEFAULTS |= {"dtype": "float64", "device": "cpu"}


def check_sweep_args(args) -> None:
    """--sweep runs its own grid: no option the grid sets, and --json to write its rows to."""
    given = [n for n in SWEEP_OWNS if getattr(args, n) is not None]
    given += [n for n, v in SWEEP_DEFAULTS.items() if getattr(args, n) != v]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"--sweep runs its own grid: drop {flag} (set it in the grid's TOML)")
    if args.predict:
        raise UsageError("--sweep runs its own grid: drop --predict (predict one model)")
    if not args.json:
        raise UsageError("--sweep needs --json FILE: the sweep's rows go there")


def solve_options(args) -> dict:
    """method, dtype, device, framework, tol and max_iter, checked, defaults filled in."""
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


def model_from_args(args, dtype: str):
    """(spec, weights, source) from --model (+ --spec for a state_dict), --spec (+ --weights)
    or --cell and sizes; cast to dtype, time-major, R scaled by --gain."""
    given = [name for name in ("model", "cell") if getattr(args, name)]
    given += ["spec"] if args.spec and not args.model else []
    if len(given) > 1:
        raise UsageError(f"--{given[0]} and --{given[1]} both name a model: give one")
    if args.weights and (args.model or not args.spec):
        raise UsageError("--weights goes with --spec alone: the spec says what the weights are")
    weights, source = _named_weights(args)
    gain = _number("--gain", args.gain, float, -math.inf)
    weights = weights.astype(dtype)
    if gain != 1:
        scale = np.asarray(gain, dtype)
        weights = weights.replace(**{k: weights[k] * scale for k in weights if k.endswith(".R")})
    spec = weights.spec.replace(batch_first=False)
    return spec, {k: weights[k] for k in weights}, source + ("" if gain == 1 else f", R x {gain}")


def _named_weights(args):
    """(canonical weights, where they come from) of the one model the arguments name."""
    if args.model:
        return _trusted_model_file(args), f"{args.model}"
    if args.spec:
        spec = load_spec(args.spec)
        weights = (
            load_weights(args.weights, spec)
            if args.weights
            else init_weights(spec, _number("--seed", args.seed, int, 0))
        )
        return weights, f"spec {args.spec}" + (f", weights {args.weights}" if args.weights else "")
    cell = args.cell or "gru"
    if cell not in [c.value for c in Cell]:
        raise UsageError(f"--cell {cell}: allowed {', '.join(c.value for c in Cell)}")
    spec = ModelSpec(
        Cell(cell), _number("--input", args.input, int, 1), _number("--hidden", args.hidden, int, 1)
    )
    return init_weights(spec, _number("--seed", args.seed, int, 0)), "generated"


def _trusted_model_file(args):
    """A model file's weights, once the file run as it is has matched the reference on them
    (as `parity --model` checks it): a file whose own numbers differ is refused in one line."""
    from harness.model.protocol import NotSupported
    from harness.model_file import check
    from harness.model_file.model import open_model

    model = open_model(args.model, load_spec(args.spec) if args.spec else None, _given(args))
    if model.direction == "reverse":
        raise UsageError(f"{args.model} is a reverse-only model: parallel-in-time needs forward")
    if model.runtime is not None:
        runtime = model.runtime
        sizes, budget = check.plan_sizes([runtime]), check.budget_of(model)
        result = check.check_runtime("model-file", runtime, model, sizes, budget=budget)
        if result.status == "failed":
            raise NotSupported(
                f"{args.model} run as it is differs from the weights read from it: {result.reason}"
            )
        if result.status == "skipped":
            say(f"note: {args.model} was not run: {result.reason}")
    return model.weights


def _data_set(args):
    """An ONNX model's --inputs data set (test-data folder or .npz), read once; None when
    --inputs is x as .npy or absent."""
    if not args.inputs or args.inputs.endswith(".npy") or not args.model:
        return None
    if not hasattr(args, "_data_set"):
        from harness.model_file.inputs import read_inputs
        from harness.onnx.reader import graph_input_names, load_model

        onnx_model = load_model(args.model)
        outputs = [o.name for o in onnx_model.graph.output]
        args._data_set = read_inputs(args.inputs, graph_input_names(onnx_model), outputs)[0]
    return args._data_set


def _given(args):
    data = _data_set(args)
    return None if data is None else data.inputs


def input_sequence(args, spec: ModelSpec, dtype: str) -> np.ndarray:
    """x [T, B, I] from --inputs (.npy, or the sequence of an ONNX data set), or generated from
    --steps, --batch and --seed."""
    if args.inputs:
        if args.steps or args.batch:
            raise UsageError("--inputs gives T and B: drop --steps/--batch")
        data = _data_set(args)
        x = _load_npy("--inputs", args.inputs) if data is None else _sequence_of(args, data)
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


def initial_state(args, name: str, spec: ModelSpec, B: int):
    """--h0 or --c0 (`name`) as [L*D, B, H] in the spec's dtype; None when not given."""
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


def _sequence_of(args, data) -> np.ndarray:
    """The data set's sequence input, time-major."""
    from harness.onnx.reader import read_onnx

    imported = read_onnx(args.model, data.inputs)
    if imported.x_input not in data.inputs:
        raise UsageError(f"--inputs {data.name} has no value for {imported.x_input!r}")
    x = np.asarray(data.inputs[imported.x_input], np.float64)
    return x.transpose(1, 0, 2) if imported.batch_major else x


def _number(option: str, text: str, kind: type, minimum: float):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "an integer" if kind is int else "a finite number"
        raise UsageError(f"{option} {text}: allowed {what} >= {minimum}")
    return value


def _load_npy(option: str, path: str) -> np.ndarray:
    from harness.files.archive import check_npy

    try:
        check_npy(path, f"{option} {path}")
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{option} {path}: not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{option} {path}: expected one floating-point array")
    if not np.isfinite(array).all():
        raise UsageError(f"{option} {path}: holds non-finite values")
    return array
