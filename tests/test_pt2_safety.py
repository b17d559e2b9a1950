"""A torch .pt2 (ExportedProgram) is read without unpickling or running anything it holds. Real
payloads (tests/pt2_payloads.py) in each member torch's loader unpickles and each field its
deserializer evaluates, and zip bombs, are refused in one line naming the member by every
command that takes a model file, and the payload's marker file is never created; the same
payloads do run under torch.export.load; an untampered file, and one whose sample inputs (never
opened) or guards code (dropped) hold a payload, still pass parity against its ONNX export.
Every op of a graph is accounted for: one the reader does not map is named, never dropped."""

from __future__ import annotations

import contextlib
import types

import pytest

from backends.pt2_values import Values
from harness.cli.main import main
from harness.model_file import limits
from tests import model_files as make
from tests import pt2_payloads as tampered

torch = pytest.importorskip("torch", reason="torch is not installed")
I, H, HEAD = 3, 4, 2


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One small GRU + Linear saved by torch.export.save, its ONNX export, and every tampered
    copy, all built once."""
    pytest.importorskip("onnx", reason="onnx is not installed (the --against export)")
    folder = tmp_path_factory.mktemp("pt2")
    net = make.torch_net("gru", I=I, H=H, head=HEAD, seed=7)
    genuine = make.save_exported_program(net, folder / "model.pt2")
    marker = folder / "marker"
    bomb = tampered.zeros_deflated()
    files = {
        case: tampered.tamper(genuine, folder / f"{case}.pt2", case, marker, bomb)
        for case in tampered.CASES
    }
    files["genuine"] = genuine
    onnx_file = make.export_onnx(net, folder / "model.onnx")
    return types.SimpleNamespace(genuine=genuine, onnx=onnx_file, marker=marker, files=files)


COMMANDS = {
    "parity": lambda f, made, tmp: ["parity", "--model", f, "--backends", "numpy"],
    "parity-against": lambda f, made, tmp: [
        *("parity", "--model", f, "--backends", "numpy", "--against", str(made.onnx))
    ],
    "bench": lambda f, made, tmp: [
        *("bench", "--model", f, "--steps", "4", "--batch", "1", "--backends", "model-file"),
        *("--out", str(tmp / "bench.json")),
    ],
    "parallel-in-time": lambda f, made, tmp: [
        *("parallel-in-time", "--model", f, "--steps", "4", "--json", str(tmp / "pit.json"))
    ],
    "export": lambda f, made, tmp: [
        *("export", "--model", f, "--exporters", "direct", "--out", str(tmp / "exported"))
    ],
}
REFUSED = [case for case, named in tampered.CASES.items() if named]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", REFUSED)
def test_a_tampered_pt2_is_refused_in_one_line_naming_it(
    made, case, command, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(limits.ENV, "256M")
    assert main(COMMANDS[command](str(made.files[case]), made, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: ") and err.count("\n") == 1, err
    for text in tampered.CASES[case]:
        assert text in err, err
    assert not made.marker.exists()
    assert not any(tmp_path.iterdir()), "nothing is written for a refused file"


@pytest.mark.parametrize("against", [False, True])
@pytest.mark.parametrize("case", ["genuine", "sample-inputs-pickle", "guards-code"])
def test_an_untampered_program_still_passes(made, case, against, capsys):
    """Sample inputs are never opened and guards code is dropped: those payloads never run,
    and the program the file holds is read and run as it is."""
    argv = COMMANDS["parity-against" if against else "parity"](str(made.files[case]), made, None)
    assert main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "(exported-program): GRU I=3 H=4 L=1" in out.splitlines()[0], out
    rows = [r for r in out.splitlines() if r.startswith(("model-file", "export-file"))]
    assert len(rows) == (3 if against else 1) and all(
        r.split()[-1] == "passed" or "passed:" in r for r in rows
    ), out
    assert not made.marker.exists()


@pytest.mark.parametrize(
    "case", ["sample-inputs-pickle", "weight-use-pickle", "sympy-expression", "guards-code"]
)
def test_the_payloads_run_under_torch_export_load(made, case, tmp_path):
    """What the reader refuses or never opens is live: torch's own loader runs it."""
    marker = tmp_path / "live"
    path = tampered.tamper(made.genuine, tmp_path / "live.pt2", case, marker)
    with contextlib.suppress(Exception):
        program = torch.export.load(str(path))
        program.module()(torch.randn(2, 5, I))
    assert marker.exists()


def test_a_damaged_archive_is_one_line(made, tmp_path, capsys):
    data = bytearray(made.genuine.read_bytes())
    central = int.from_bytes(data[-6:-2], "little")  # where the end record says it starts
    data[central : central + 4] = b"PK\x01\x03"
    damaged = tmp_path / "damaged.pt2"
    damaged.write_bytes(bytes(data))
    assert main(["parity", "--model", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a damaged zip archive" in err, err


def _refused_alone(net, x, tmp_path, capsys) -> str:
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(path))
    assert main(["parity", "--model", str(path), "--backends", "numpy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_an_op_the_reader_does_not_map_is_named_not_dropped(tmp_path, capsys):
    """An op before the GRU that the reader does not map (a scaling here; an nn.Embedding was
    once read as a GRU on its indices, before embeddings were mapped) is refused by name."""

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(I, H, batch_first=True)

        def forward(self, x):
            return self.rnn(x * 2.0)[0]

    err = _refused_alone(Scaled().eval(), torch.randn(2, 5, I), tmp_path, capsys)
    assert "its graph calls aten.mul.Tensor, which this reader does not map" in err, err
    assert "allowed aten.lstm.input, aten.gru.input" in err, err


def test_an_initial_state_other_than_zeros_is_named_not_ignored(tmp_path, capsys):
    class Learned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(I, H, batch_first=True)
            self.h0 = torch.nn.Parameter(torch.full((1, 2, H), 0.5))

        def forward(self, x):
            return self.rnn(x, self.h0)[0]

    err = _refused_alone(Learned().eval(), torch.randn(2, 5, I), tmp_path, capsys)
    assert "the initial state of its aten.gru.input comes from placeholder p_h0" in err, err
    assert "allowed zeros" in err, err


SIZES = [
    "Symbol('s77', positive=True, integer=True)",
    "Mul(Integer(6), Symbol('s77', positive=True, integer=True))",
    "Add(Symbol('s0', integer=True), Integer(-1))",
    "FloorDiv(Symbol('s1', positive=True), 2)",
]
HOSTILE = [
    "__import__('os').system('true')",
    "open('marker', 'w')",
    "Symbol('s1').__class__",
    "Symbol(chr(115))",
    "Symbol('s1', positive=__import__('os'))",
    "Integer(1) if True else 0",
    "(lambda: 0)()",
    "Symbol('s1; import os')",
    "Mul(*[Integer(1)])",
    "x" * (3000),
]


@pytest.mark.parametrize("text", SIZES)
def test_sizes_torch_writes_are_read(text):
    assert Values("f.pt2").expression(text, "size s") == text


@pytest.mark.parametrize("text", HOSTILE)
def test_an_expression_torch_would_evaluate_is_refused_unless_plain_sympy(text):
    with pytest.raises(limits.Refused, match="torch would evaluate it"):
        Values("f.pt2").expression(text, "size s")


@pytest.mark.parametrize(
    "node, refused",
    [
        ({"type": "collections.defaultdict", "context": "{}", "children_spec": []}, "defaultdict"),
        ({"type": "builtins.dict", "context": '[{"__enum__": 1}]', "children_spec": [{}]}, "key"),
    ],
)
def test_a_pytree_spec_naming_a_type_torch_would_import_is_refused(node, refused):
    import json

    with pytest.raises(limits.Refused, match=refused):
        Values("f.pt2").treespec(json.dumps([1, node]), "its in_spec")
