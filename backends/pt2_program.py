"""A .pt2's serialized program (models/<name>.json) checked field by field, then rebuilt into an
ExportedProgram by torch's own deserializer on a clean copy that holds only what was checked.

torch's deserializer trusts its JSON in ways a hostile file can use: it hands every symbolic
size (`expr_str`) to sympy.sympify, an eval; it resolves a node's target by attribute lookup
from `torch`, `operator` or `math`; it writes node and input names, and attribute paths, into
Python source that FX compiles; the module it builds execs the program's `guards_code`; an
input or output spec may name a type that pytree imports. So, before torch sees it:

- a target is an aten op (torch.ops.aten.NAME.OVERLOAD) or operator.getitem; anything else (a
  Python callable, another op namespace, a higher-order op with a subgraph) is refused by name;
- an expression parses (Python's ast, which runs nothing) as sympy constructors of integers and
  symbol names only (Symbol, Integer, Add, Mul, FloorDiv, ...);
- every name is a Python identifier, every attribute path a dotted one;
- in_spec/out_spec hold tuples, lists, dicts (identifier keys) and leaves only
  (backends/pt2_values.py checks each value);
- guards_code, node metadata (stack traces, module paths the deserializer resolves) and custom
  metadata are dropped; a torchbind object, a subgraph or an operator as an argument is refused;
- a literal size (aten.zeros' `size`) is held to the memory budget."""

from __future__ import annotations

import re

from backends.pt2_archive import IDENTIFIER, shown
from backends.pt2_values import SYMBOL, Values
from harness.files import limits
from harness.json_values import JsonObject

ATEN_TARGET = re.compile(rf"torch\.ops\.aten\.({IDENTIFIER})\.({IDENTIFIER})\Z")
BUILTIN_TARGETS = {"_operator.getitem": "operator.getitem"}
VERIFIERS = ("ATEN", "TRAINING")


def checked_program(document, path: str) -> tuple[dict, list[str]]:
    """(a clean copy of the serialized program holding only checked fields, the targets its
    nodes call as torch names them: "aten.gru.input", "operator.getitem")."""
    return _Checker(path).program(document)


def rebuild(clean: dict, state_dict: dict, constants: dict):
    """The ExportedProgram of a checked program and the tensors read from the archive.

    Calls ExportedProgramDeserializer.deserialize (torch/_export/serde/serialize.py), which
    unpickles only through deserialize_torch_artifact: given dicts for the state dict and
    constants it returns them as they are, and example_inputs=None skips the one call that would
    unpickle the example inputs. Without example inputs, ExportedProgram.module() generates no
    guards function (the exec of guards code, torch/export/_unlift.py); the input shapes are
    still checked by the module's pre-hook. What else torch would evaluate, resolve or compile
    is checked by checked_program (this module's docstring)."""
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    serialized = _dict_to_dataclass(schema.ExportedProgram, clean)
    return ExportedProgramDeserializer().deserialize(serialized, state_dict, constants, None)


class _Checker(Values):
    def target(self, value, what: str) -> str:
        """ "aten.gru.input" for torch.ops.aten.gru.input; refused unless aten or getitem."""
        if isinstance(value, str):
            if value in BUILTIN_TARGETS:
                return BUILTIN_TARGETS[value]
            match = ATEN_TARGET.match(value)
            if match:
                return f"aten.{match[1]}.{match[2]}"
        raise self._refuse(
            f"{what} calls {shown(value)}: allowed aten ops (torch.ops.aten.*) and "
            "operator.getitem; any other target (a Python callable, another op namespace, a "
            "higher-order op) could run code and is refused before anything is rebuilt"
        )

    def node(self, value, number: int, targets: list[str]) -> dict:
        value = value if isinstance(value, dict) else {}
        name = self.name(value.get("name"), f"node {number}")
        what = f"node {name}"
        targets.append(self.target(value.get("target"), what))
        inputs = []
        for item in self.listed(value.get("inputs"), what, 64):
            item = item if isinstance(item, dict) else {}
            argument = self.argument_name(item.get("name"), f"{what}'s argument")
            kind = item.get("kind")
            if kind not in (None, 1, 2) or type(kind) is bool:
                raise self._unread(f"{what}: argument kind {shown(kind)}: allowed 1, 2")
            checked = self.argument(item.get("arg"), f"{what}'s {argument}")
            if argument == "size":
                self._size(checked, what)
            inputs.append({"name": argument, "arg": checked, "kind": kind})
        kinds = ("as_tensor", "as_tensors", "as_sym_int", "as_none")
        outputs = [
            self.argument(o, f"{what}'s output", kinds)
            for o in self.listed(value.get("outputs"), what)
        ]
        return {
            "target": value["target"],
            "inputs": inputs,
            "outputs": outputs,
            "metadata": {},
            "is_hop_single_tensor_return": None,
            "name": name,
        }

    def _size(self, checked: dict, what: str) -> None:
        """A literal size (aten.zeros') is what the op allocates when the program runs."""
        ((kind, values),) = checked.items()
        if kind not in ("as_ints", "as_sym_ints"):
            return
        numbers = [v if kind == "as_ints" else v.get("as_int", 1) for v in values]
        nbytes = 8
        for number in numbers:
            nbytes *= max(number, 1)
        limits.require(nbytes, f"{self.path}: {what}'s size {numbers}")

    def graph(self, value) -> tuple[dict, list[str]]:
        value = value if isinstance(value, dict) else {}
        if value.get("custom_obj_values"):
            raise self._refuse("its graph holds torchbind objects: refused, never rebuilt")
        if value.get("sym_float_values"):
            raise self._unread("its graph holds symbolic floats, which are not read")
        targets: list[str] = []
        listed_nodes = self.listed(value.get("nodes"), "nodes")
        nodes = [self.node(n, k, targets) for k, n in enumerate(listed_nodes)]
        tensors = self.table(value.get("tensor_values"), "tensor_values")
        sym_ints = self.table(value.get("sym_int_values"), "sym_int_values")
        sym_bools = self.table(value.get("sym_bool_values", {}), "sym_bool_values")
        clean = {
            "inputs": [
                self.argument(a, "a graph input", ("as_tensor",))
                for a in self.listed(value.get("inputs"), "inputs")
            ],
            "outputs": [
                self.argument(a, "a graph output", ("as_tensor",))
                for a in self.listed(value.get("outputs"), "outputs")
            ],
            "nodes": nodes,
            "tensor_values": {
                self.name(k, "a tensor"): self.tensor_meta(v, f"tensor {k}")
                for k, v in tensors.items()
            },
            "sym_int_values": {
                self.name(k, "a size"): self.sym_int(v, f"size {k}") for k, v in sym_ints.items()
            },
            "sym_bool_values": {
                self.name(k, "a condition"): self.sym_bool(v, f"condition {k}")
                for k, v in sym_bools.items()
            },
            "is_single_tensor_return": self.boolean(
                value.get("is_single_tensor_return", False), "is_single_tensor_return"
            ),
            "custom_obj_values": {},
            "sym_float_values": {},
        }
        return clean, targets

    def input_spec(self, value) -> dict:
        kind, inner = self.tagged(value, "an input spec")
        inner = inner if isinstance(inner, dict) else {}
        if kind == "user_input":
            return {kind: {"arg": self.argument(inner.get("arg"), "a user input", ("as_tensor",))}}
        fields = {
            "parameter": "parameter_name",
            "buffer": "buffer_name",
            "tensor_constant": "tensor_constant_name",
        }
        if kind not in fields:
            if kind == "custom_obj":
                raise self._refuse("its program takes a torchbind object: refused, never rebuilt")
            raise self._unread(
                f"an input spec of kind {shown(kind)}: allowed user inputs, parameters, buffers "
                "and tensor constants"
            )
        spec: JsonObject = {
            "arg": self._tensor_ref(inner.get("arg"), f"a {kind}"),
            fields[kind]: self.fqn(inner.get(fields[kind]), f"a {kind}'s name"),
        }
        if kind == "buffer":
            spec["persistent"] = self.boolean(inner.get("persistent"), "a buffer's persistent")
        return {kind: spec}

    def output_spec(self, value) -> dict:
        kind, inner = self.tagged(value, "an output spec")
        if kind != "user_output" or not isinstance(inner, dict):
            raise self._unread(
                f"an output spec of kind {shown(kind)} (a program that changes its buffers or "
                "inputs): allowed user outputs"
            )
        return {kind: {"arg": self.argument(inner.get("arg"), "a user output", ("as_tensor",))}}

    def call_graph(self, value) -> list[dict]:
        """The root's entry only: what .module() takes its inputs and outputs from."""
        entries = self.listed(value, "module_call_graph")
        root = entries[0] if entries and isinstance(entries[0], dict) else {}
        signature = root.get("signature")
        if root.get("fqn") != "" or not isinstance(signature, dict):
            raise self._unread("its module_call_graph does not start with the root's signature")
        names = signature.get("forward_arg_names")
        return [
            {
                "fqn": "",
                "signature": {
                    "inputs": [
                        self.argument(a, "a call input", ("as_tensor",))
                        for a in self.listed(signature.get("inputs"), "call inputs")
                    ],
                    "outputs": [
                        self.argument(a, "a call output", ("as_tensor",))
                        for a in self.listed(signature.get("outputs"), "call outputs")
                    ],
                    "in_spec": self.treespec(signature.get("in_spec"), "its in_spec"),
                    "out_spec": self.treespec(signature.get("out_spec"), "its out_spec"),
                    "forward_arg_names": None
                    if names is None
                    else [self.name(n, "a forward argument") for n in self.listed(names, "names")],
                },
            }
        ]

    def program(self, document) -> tuple[dict, list[str]]:
        document = document if isinstance(document, dict) else {}
        module = document.get("graph_module")
        module = module if isinstance(module, dict) else {}
        graph, targets = self.graph(module.get("graph"))
        found = module.get("signature")
        signature = found if isinstance(found, dict) else {}
        version = document.get("schema_version")
        version = version if isinstance(version, dict) else {}
        verifiers = self.listed(document.get("verifiers", []), "verifiers", 4)
        if any(v not in VERIFIERS for v in verifiers):
            raise self._unread(f"verifiers {shown(verifiers)}: allowed {', '.join(VERIFIERS)}")
        ranges = {}
        for symbol, bounds in self.table(document.get("range_constraints"), "ranges").items():
            if not isinstance(symbol, str) or not SYMBOL.match(symbol):
                raise self._refuse(f"a range names symbol {shown(symbol)}")
            bounds = bounds if isinstance(bounds, dict) else {}
            ranges[symbol] = {
                k: None
                if bounds.get(k) is None
                else self.integer(bounds.get(k), f"range of {symbol}")
                for k in ("min_val", "max_val")
            }
        clean = {
            "graph_module": {
                "graph": graph,
                "signature": {
                    "input_specs": [
                        self.input_spec(s)
                        for s in self.listed(signature.get("input_specs"), "inputs")
                    ],
                    "output_specs": [
                        self.output_spec(s)
                        for s in self.listed(signature.get("output_specs"), "outs")
                    ],
                },
                "module_call_graph": self.call_graph(module.get("module_call_graph")),
                "metadata": {},
                "treespec_namedtuple_fields": {},
            },
            "opset_version": {
                self.name(k, "an opset"): self.integer(v, "an opset version")
                for k, v in self.table(document.get("opset_version"), "opset_version").items()
            },
            "range_constraints": ranges,
            "schema_version": {
                "major": self.integer(version.get("major"), "schema_version"),
                "minor": self.integer(version.get("minor"), "schema_version"),
            },
            "verifiers": list(verifiers),
            "torch_version": "",
            "guards_code": [],  # Python that the rebuilt module would exec
        }
        return clean, targets
