"""A node input's value as a user's ONNX file gives it: stored (an initializer or a Constant),
given for a graph input (--inputs), or folded from a constant subgraph (a dynamo export's
Slice/Concat of initializers). Only the nodes the asked-for value needs are folded, and only
after shape inference has bounded every size they compute (harness/onnx/sizes.py); a value
that is none of these is refused, naming where it comes from."""

from __future__ import annotations

import numpy as np

from harness.files.limits import Refused
from harness.model.protocol import NotSupported
from harness.onnx import sizes
from harness.onnx.graph import GraphIndex

INPUTS_HINT = "an ONNX test-data folder of input_*.pb, or an .npz keyed by graph input name"
RECURRENT = ("RNN", "LSTM", "GRU")


def stored_tensors(model) -> dict:
    """The main graph's stored values by name: initializers and Constant nodes' tensors."""
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    return tensors


def to_array(tensor, what: str) -> np.ndarray:
    """A stored tensor as an array, its size and data checked first (sizes.check_tensor)."""
    from onnx import numpy_helper

    sizes.check_tensor(tensor, what)
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:
        raise Refused(f"{what} cannot be read ({exc}): the file is corrupt") from None


def constant_values(model) -> dict[str, np.ndarray]:
    """Every value stored in the file by name: initializers and Constant nodes' outputs."""
    return {
        name: to_array(tensor, f"stored value {name!r}")
        for name, tensor in stored_tensors(model).items()
    }


def graph_input_names(model) -> list[str]:
    """The graph's inputs that are not also initializers (those are defaults, not inputs)."""
    stored = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in stored]


class Values:
    """A node input's value: stored in the file, given for a graph input, or folded from a
    constant subgraph; refused, naming where it comes from, when it is none of these."""

    def __init__(self, model, index: GraphIndex, given: dict[str, np.ndarray], path):
        self.model, self.index, self.path, self.given = model, index, path, given
        self.tensors = stored_tensors(model)
        self.inputs = set(graph_input_names(model))
        unknown = sorted(set(given) - {i.name for i in model.graph.input})
        if unknown:
            raise NotSupported(
                f"--inputs names {unknown[0]!r}, which is not an input of {path}: allowed "
                f"{', '.join(graph_input_names(model))}"
            )
        self.weight_inputs: dict[str, np.ndarray] = {}
        self.notes: list[str] = []
        self._arrays: dict[str, np.ndarray] = {}  # stored values read, and folded ones
        self._ops: dict[str, set[str]] = {}  # a folded value: the op types it came through
        self._why: dict[str, str] = {}  # a value not folded: why

    def get(self, name: str, what: str) -> np.ndarray:
        if name in self.given:  # a graph input's value, or one that overrides its default
            self.weight_inputs[name] = self.given[name]
            self._note(f"{what} given as graph input {name!r}")
            return np.asarray(self.given[name])
        if name in self.tensors:
            if name not in self._arrays:
                self._arrays[name] = to_array(self.tensors[name], f"{what} ({name!r})")
            return self._arrays[name]
        if name in self.inputs:
            raise NotSupported(
                f"{what} is graph input {name!r}, whose value is not given: pass --inputs "
                f"({INPUTS_HINT})"
            )
        folded = self._fold(name)
        if folded is None:
            _, leaves = self.index.upstream(name, self._known())
            sources = sorted(leaves & self.inputs)
            if sources or name not in self._why:
                where = (
                    f"graph input {sources[0]!r}" if sources else "values the file does not hold"
                )
                raise NotSupported(
                    f"{what} is computed at run time from {where}: allowed stored weights, "
                    f"given graph inputs (--inputs, {INPUTS_HINT}) or constant subgraphs"
                )
            raise NotSupported(
                f"{what} is computed by a constant subgraph that is not folded: "
                f"{self._why[name]}: allowed stored weights, given graph inputs (--inputs, "
                f"{INPUTS_HINT}) or constant subgraphs of bounded size"
            )
        self._note(f"{what} folded from a constant subgraph ({', '.join(sorted(self._ops[name]))})")
        return folded

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _known(self) -> set[str]:
        return set(self.tensors) | set(self.given) | set(self._arrays)

    def _fold(self, name: str) -> np.ndarray | None:
        """`name` computed from stored and given values by the nodes upstream of it alone,
        each output's size bounded before any runs (onnx's reference evaluator); None when it
        needs a value the file does not hold, or its size cannot be told (self._why)."""
        if name in self._arrays or name in self._why:
            return self._arrays.get(name)
        known = self._known()
        nodes, leaves = self.index.upstream(name, known)
        if not nodes or leaves - known:
            return None
        blocked = next((n for n in nodes if _unfoldable(n)), None)
        if blocked is not None:
            self._why[name] = f"it comes from a {blocked.op_type} node"
            return None
        tensors = {v: self.tensors[v] for v in leaves if v in self.tensors}
        arrays = {v: np.asarray(self.given.get(v, self._arrays.get(v))) for v in leaves}
        arrays = {v: a for v, a in arrays.items() if v not in tensors}
        _, why = sizes.bound_nodes(nodes, tensors, arrays, self.model.opset_import, str(self.path))
        if why:
            self._why[name] = why
            return None
        results = self._evaluate(nodes, tensors, arrays)
        if results is None:
            self._why[name] = "onnx's reference evaluator cannot compute it"
            return None
        ops = {n.op_type for n in nodes}.union(*(self._ops.get(v, ()) for v in leaves))
        for out, value in results.items():
            self._arrays[out], self._ops[out] = value, ops
        return self._arrays.get(name)

    def _evaluate(self, nodes, tensors: dict, arrays: dict) -> dict[str, np.ndarray] | None:
        import onnx
        from onnx import helper, numpy_helper
        from onnx.reference import ReferenceEvaluator

        wanted = [o for n in nodes for o in n.output if o]
        inits = [sizes.named(tensor, key) for key, tensor in tensors.items()]
        inits += [numpy_helper.from_array(value, key) for key, value in arrays.items()]
        graph = helper.make_graph(
            nodes, "fold", [], [onnx.ValueInfoProto(name=n) for n in wanted], inits
        )
        folded = helper.make_model(graph, opset_imports=self.model.opset_import)
        try:
            results = ReferenceEvaluator(folded).run(None, {})
        except Exception:  # an op the evaluator lacks: not folded, the refusal says so
            return None
        return {n: np.asarray(v) for n, v in zip(wanted, results, strict=True)}


def _unfoldable(node) -> bool:
    return (
        node.op_type in RECURRENT
        or node.op_type in sizes.UNFOLDED
        or any(a.HasField("g") or len(a.graphs) for a in node.attribute)
    )
