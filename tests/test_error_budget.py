"""A tolerance that knows the model: the error budget grows with the step and with the model's
own amplification (its largest Lyapunov exponent), so an honest expanding model passes saying
from which step float32 and float64 part, while a contracting one keeps the plain tolerance;
a size is blamed only when the error depends on the size, not the step; a file that fixes T or
B passes saying so, and fails under --strict-shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.cli.main import main
from harness.model_file.sizes import SIZES, Tried, diagnose, plan
from harness.parity.budget import ErrorBudget, growth
from tests import model_files as make


def test_growth_is_the_sum_of_the_amplification():
    assert growth(0.0, 7) == pytest.approx(7.0)
    rate = -0.3
    assert growth(rate, 5) == pytest.approx(sum(math.exp(rate * k) for k in range(5)))
    assert growth(0.5, 30) == pytest.approx(sum(math.exp(0.5 * k) for k in range(30)))
    assert np.isinf(growth(2.0, 10_000)) or growth(2.0, 10_000) > 1e300


def test_a_contracting_budget_stays_plain_and_an_expanding_one_grows():
    contracting = ErrorBudget(-0.5, rounding=1e-7)
    assert float(contracting.factor(10_000)) == 1.0
    assert "plain tolerance" in contracting.describe(300)
    expanding = ErrorBudget(0.2, rounding=1e-7)
    factors = expanding.factor(np.arange(1, 200))
    assert (np.diff(factors) >= 0).all() and factors[-1] > 1e10
    assert expanding.unchecked_from(200) is not None
    assert "in effect unchecked" in expanding.describe(200)
    # float64 rounds 2^29 times finer: the same model's budget in float64 grows later
    assert expanding.for_dtype("float64").unchecked_from(200) > expanding.unchecked_from(200)


def _parity(*argv):
    return main(["parity", *map(str, argv)])


@pytest.fixture(scope="module")
def chaotic(tmp_path_factory):
    pytest.importorskip("onnx", reason="onnx is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    folder = tmp_path_factory.mktemp("chaotic")
    return make.chaotic_onnx(folder / "gain3.onnx", gain=3.0), folder


def test_an_honest_expanding_model_passes_with_its_budget_stated(chaotic, capsys):
    path, _ = chaotic
    assert _parity("--model", path, "--backends", "numpy,ort-direct-cpu") == 0, capsys.readouterr()
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if line.startswith("note: error budget"))
    assert "LLE +" in note and "in effect unchecked" in note, note


def test_a_changed_weight_of_an_expanding_model_is_still_named(chaotic, capsys):
    path, folder = chaotic
    bad = make.perturb_onnx(path, folder / "bad.onnx", "one-R", delta=1e-3)
    assert _parity("--model", path, "--against", bad, "--backends", "numpy") == 1
    first = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("FAIL"))
    assert "weights l0.R" in first, first


def test_parallel_in_time_takes_an_expanding_model(chaotic, capsys):
    path, _ = chaotic
    code = main(["parallel-in-time", "--model", str(path), "--steps", "64", "--max-iter", "20"])
    captured = capsys.readouterr()
    assert "bakes" not in captured.out + captured.err
    assert code in (0, 1), captured.err  # it runs: converging or not is the finding
    assert "largest Lyapunov exponent" in captured.out


class _Runtime:
    label, T, B, constants, output_T = "f.onnx", None, None, {}, None


def test_an_error_growing_with_the_step_is_not_a_baked_size():
    tried = {(7, 3): Tried("right"), (13, 2): Tried("right"), (300, 2): Tried("wrong", 40)}
    cause = diagnose(_Runtime(), tried, lambda T, B: Tried("right"))
    assert "grows with the step, not the size" in cause and "step 40" in cause


def test_an_error_depending_on_the_size_is_a_baked_size():
    tried = {(7, 3): Tried("wrong", 0), (5, 3): Tried("right"), (300, 2): Tried("right")}

    def probe(T, B):
        return Tried("right" if T in (5, 300) else "wrong", 0)

    cause = diagnose(_Runtime(), dict(tried), probe)
    assert "right only at T=5, 300" in cause and "bakes that sequence size in" in cause


def test_wrong_everywhere_blames_no_size():
    tried = {size: Tried("wrong", 0) for size in SIZES}
    assert diagnose(_Runtime(), tried, lambda T, B: Tried("wrong", 0)) == ""


def test_the_plan_holds_a_long_sequence_and_says_what_a_file_fixes():
    free, fixed = _Runtime(), _Runtime()
    fixed.label, fixed.T, fixed.B = "fixed.onnx", 5, 2
    assert max(t for t, _ in plan([free]).sizes) >= 256 and plan([free]).note() == ""
    both = plan([free, fixed])
    assert set(both.sizes) == {(5, 2)}
    assert "checked at T=5 and B=2 only: fixed.onnx fixes T=5 and B=2" in both.note()
    assert "no sequence of 256+ steps" in both.note()


@pytest.fixture(scope="module")
def fixed_export(tmp_path_factory):
    pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("onnx", reason="onnx is not installed")
    import torch

    from backends.onnx_export import quiet_export

    folder = tmp_path_factory.mktemp("fixed")
    net = make.torch_net("gru", H=6, seed=8)
    source = make.save_scripted(net, folder / "g.pt")
    with quiet_export():
        torch.onnx.export(
            net, (make.example(net),), str(folder / "fixed.onnx"), dynamo=False, opset_version=17
        )
    return source, folder / "fixed.onnx"


def test_a_fixed_size_export_passes_saying_so_and_strict_shapes_fails_it(fixed_export, capsys):
    source, export = fixed_export
    assert _parity("--model", source, "--against", export, "--backends", "numpy") == 0
    out = capsys.readouterr().out
    assert "note: checked at T=5 and B=2 only: fixed.onnx fixes T=5 and B=2" in out, out
    argv = ("--model", source, "--against", export, "--backends", "numpy", "--strict-shapes")
    assert _parity(*argv) == 1
    assert "--strict-shapes: checked at T=5 and B=2 only" in capsys.readouterr().err
