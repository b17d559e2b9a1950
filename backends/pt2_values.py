"""The values of a .pt2's serialized program (backends/pt2_program.py), each checked and
copied: what torch's deserializer would evaluate, resolve or write into code is held to a form
that cannot run anything.

- every name is a Python identifier (FX writes it into the source it compiles), every
  attribute path a dotted one;
- an expression (`expr_str`, which torch hands to sympy.sympify, an eval) parses by Python's ast,
  which runs nothing, into sympy constructors of integers and symbol names only (Symbol,
  Integer, Add, Mul, FloorDiv, ...);
- a pytree spec (in_spec, out_spec) holds tuples, lists, dicts with identifier keys and leaves
  only: another type is one pytree would import;
- an argument is a tensor, a number, a size, a dtype, a device or a list of them; a subgraph,
  a torchbind object or an operator as a value is refused."""

from __future__ import annotations

import ast
import json
import keyword
import re

from backends.pt2_archive import DTYPES, FQN, IDENTIFIER, STRIDED, shown
from harness.files.limits import Refused
from harness.model.protocol import NotSupported

NAME = re.compile(rf"{IDENTIFIER}\Z")
SYMBOL = re.compile(r"[a-z]{1,4}\d{1,9}\Z")  # torch's symbol names: s0, s77, u3, ...
# sympy constructors an expression may call: sizes are integer arithmetic, guards comparisons
SYMPY_CALLS = {
    "Symbol", "Integer", "Add", "Mul", "FloorDiv", "CeilDiv", "Mod", "PythonMod", "Max", "Min",
    "Eq", "Ne", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
    "And", "Or", "Not",
}  # fmt: skip
SYMPY_NAMES = {"true", "false"}
ASSUMPTIONS = {"positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite"}
MAX_EXPR = 2000
MAX_NODES = 100_000
MAX_SPEC = 2**20
SPEC_FIELDS = {"type", "context", "children_spec"}
DEVICES = ("cpu", "cuda")
MEMORY_FORMATS = {0, 1, 2, 3, 4}
# argument kinds torch would turn into code or objects: refused, never rebuilt
CODE_ARGUMENTS = {
    "as_graph": "a subgraph (a higher-order op's body)",
    "as_custom_obj": "a torchbind object",
    "as_operator": "an operator passed as a value",
}


class Values:
    """Checks and copies values, naming the file in its refusals."""

    def __init__(self, path: str):
        self.path = path

    def _refuse(self, text: str):
        return Refused(f"{self.path}: {text}")

    def _unread(self, text: str):
        return NotSupported(f"{self.path}: {text}")

    # ---- plain values ------------------------------------------------------------------------

    def tagged(self, value, what: str) -> tuple[str, object]:
        """torch's tagged value {"kind": inner}."""
        if not isinstance(value, dict) or len(value) != 1:
            raise self._unread(f"{what}: {shown(value)} is not one tagged value")
        ((kind, inner),) = value.items()
        return kind, inner

    def integer(self, value, what: str) -> int:
        if type(value) is not int:
            raise self._unread(f"{what}: {shown(value)} is not an integer")
        return value

    def boolean(self, value, what: str) -> bool:
        if type(value) is not bool:
            raise self._unread(f"{what}: {shown(value)} is not true or false")
        return value

    def number(self, value, what: str):
        if type(value) in (int, float) or value in ("Infinity", "-Infinity", "NaN"):
            return value
        raise self._unread(f"{what}: {shown(value)} is not a number")

    def listed(self, value, what: str, limit: int = MAX_NODES) -> list:
        if not isinstance(value, list) or len(value) > limit:
            raise self._unread(f"{what}: {shown(value)} is not a list of at most {limit}")
        return value

    def table(self, value, what: str) -> dict:
        if not isinstance(value, dict) or len(value) > MAX_NODES:
            raise self._unread(f"{what}: {shown(value)} is not a table of at most {MAX_NODES}")
        return value

    # ---- names, expressions, specs -----------------------------------------------------------

    def name(self, value, what: str) -> str:
        if (
            not isinstance(value, str)
            or len(value) > 256
            or not NAME.match(value)
            or keyword.iskeyword(value)
            or value.startswith("__")
        ):
            raise self._refuse(f"{what} is named {shown(value)}: allowed a Python identifier")
        return value

    def argument_name(self, value, what: str) -> str:
        """A schema argument's name ("self", "dim"): matched to the op's schema, never code."""
        if not isinstance(value, str) or len(value) > 256 or not NAME.match(value):
            raise self._refuse(f"{what} is named {shown(value)}: allowed a Python identifier")
        return value

    def fqn(self, value, what: str) -> str:
        if not isinstance(value, str) or len(value) > 512 or not FQN.match(value):
            raise self._refuse(f"{what} is {shown(value)}: allowed a dotted Python name")
        return value

    def expression(self, text, what: str) -> str:
        """A sympy srepr ("Mul(Integer(6), Symbol('s77', positive=True, integer=True))"),
        parsed by ast (which runs nothing) and walked: torch hands it to sympy.sympify."""
        problem = None
        if not isinstance(text, str) or len(text) > MAX_EXPR:
            problem = "too long or not text"
        else:
            try:
                problem = self._sympy(ast.parse(text, mode="eval").body)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                problem = "not an expression"
        if problem:
            raise self._refuse(
                f"{what} is {shown(text)} ({problem}): allowed sympy sizes built of "
                f"{', '.join(sorted(SYMPY_CALLS))}, integers and symbol names; torch would "
                "evaluate it"
            )
        return text

    def _sympy(self, node) -> str | None:
        """What is wrong with an expression's node, or None."""
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self._sympy(node.operand)
        if isinstance(node, ast.Name) and node.id in SYMPY_NAMES:
            return None
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return f"a {type(node).__name__}"
        call = node.func.id
        if call not in SYMPY_CALLS:
            return f"calls {call}"
        if call == "Symbol":
            (name, *rest), keywords = node.args or [ast.Constant(None)], node.keywords
            if rest or not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                return "a Symbol without one name"
            if not SYMBOL.match(name.value):
                return f"a symbol named {name.value[:20]!r}"
            for option in keywords:
                value = option.value
                if option.arg not in ASSUMPTIONS or not (
                    isinstance(value, ast.Constant) and type(value.value) is bool
                ):
                    return f"a Symbol option {option.arg}"
            return None
        if node.keywords:
            return f"{call} with keywords"
        for argument in node.args:
            problem = self._sympy(argument)
            if problem:
                return problem
        return None

    def treespec(self, text, what: str) -> str:
        """A pytree spec (JSON) of tuples, lists, dicts and leaves, written anew."""
        if not isinstance(text, str) or len(text) > MAX_SPEC:
            raise self._unread(f"{what} is not a pytree spec")
        try:
            protocol, root = json.loads(text)
        except (ValueError, TypeError, RecursionError):
            raise self._unread(f"{what} is not a pytree spec") from None
        if protocol != 1:
            raise self._unread(f"{what}: pytree protocol {shown(protocol)}: allowed 1")
        return json.dumps([1, self._spec_node(root, what, 0)])

    def _spec_node(self, node, what: str, depth: int) -> dict:
        if depth > 32 or not isinstance(node, dict) or set(node) != SPEC_FIELDS:
            raise self._unread(f"{what} is not a pytree spec of at most 32 levels")
        kind, context = node["type"], node["context"]
        children = self.listed(node["children_spec"], what, 10_000)
        if kind is None and context is None and not children:
            return {"type": None, "context": None, "children_spec": []}
        if kind in ("builtins.tuple", "builtins.list") and context == "null":
            clean_context = "null"
        elif kind == "builtins.dict" and isinstance(context, str):
            try:
                keys = json.loads(context)
            except ValueError:
                keys = None
            if not isinstance(keys, list) or len(keys) != len(children):
                raise self._unread(f"{what}: a dict spec without its keys")
            clean_context = json.dumps([self.name(k, f"{what}'s dict key") for k in keys])
        else:
            raise self._refuse(
                f"{what} holds a {shown(kind)}: allowed tuples, lists, dicts and tensors "
                "(another type is one pytree would import)"
            )
        return {
            "type": kind,
            "context": clean_context,
            "children_spec": [self._spec_node(c, what, depth + 1) for c in children],
        }

    # ---- values -------------------------------------------------------------------------------

    def sym_int(self, value, what: str) -> dict:
        kind, inner = self.tagged(value, what)
        if kind == "as_int":
            return {"as_int": self.integer(inner, what)}
        if kind == "as_expr" and isinstance(inner, dict):
            return {"as_expr": self._sym_expr(inner, what)}
        raise self._unread(f"{what}: a size of kind {shown(kind)}: allowed as_int, as_expr")

    def sym_bool(self, value, what: str) -> dict:
        kind, inner = self.tagged(value, what)
        if kind == "as_bool":
            return {"as_bool": self.boolean(inner, what)}
        if kind == "as_expr" and isinstance(inner, dict):
            return {"as_expr": self._sym_expr(inner, what)}
        raise self._unread(f"{what}: a condition of kind {shown(kind)}: allowed as_bool, as_expr")

    def _sym_expr(self, inner: dict, what: str) -> dict:
        hint = inner.get("hint")
        if hint is not None:
            kind, number = self.tagged(hint, what)
            if kind not in ("as_int", "as_bool"):
                raise self._unread(f"{what}: a hint of kind {shown(kind)}")
            hint = {
                kind: self.integer(number, what) if kind == "as_int" else self.boolean(number, what)
            }
        return {"expr_str": self.expression(inner.get("expr_str"), what), "hint": hint}

    def device(self, value, what: str) -> dict:
        if not isinstance(value, dict) or value.get("type") not in DEVICES:
            raise self._unread(f"{what}: device {shown(value)}: allowed {', '.join(DEVICES)}")
        index = value.get("index")
        return {
            "type": value["type"],
            "index": None if index is None else self.integer(index, what),
        }

    def tensor_meta(self, value, what: str) -> dict:
        if not isinstance(value, dict):
            raise self._unread(f"{what} has no tensor description")
        if type(value.get("dtype")) is not int or value["dtype"] not in DTYPES:
            raise self._unread(f"{what}: dtype {shown(value.get('dtype'))} is not read")
        if value.get("layout") != STRIDED:
            raise self._unread(f"{what}: layout {shown(value.get('layout'))}: allowed strided")
        return {
            "dtype": value["dtype"],
            "sizes": [self.sym_int(s, what) for s in self.listed(value.get("sizes"), what, 16)],
            "requires_grad": self.boolean(value.get("requires_grad"), what),
            "device": self.device(value.get("device"), what),
            "strides": [self.sym_int(s, what) for s in self.listed(value.get("strides"), what, 16)],
            "storage_offset": self.sym_int(value.get("storage_offset"), what),
            "layout": STRIDED,
        }

    def argument(self, value, what: str, allowed=None) -> dict:
        kind, inner = self.tagged(value, what)
        if allowed is not None and kind not in allowed:
            raise self._unread(f"{what} is {shown(kind)}: allowed {', '.join(allowed)}")
        if kind in CODE_ARGUMENTS:
            raise self._refuse(f"{what} is {CODE_ARGUMENTS[kind]}: refused, never rebuilt")
        if kind == "as_none":
            return {kind: True}
        if kind == "as_tensor":
            return {kind: self._tensor_ref(inner, what)}
        if kind == "as_tensors":
            return {kind: [self._tensor_ref(t, what) for t in self.listed(inner, what)]}
        if kind == "as_optional_tensors":
            optional = ("as_tensor", "as_none")
            return {kind: [self.argument(t, what, optional) for t in self.listed(inner, what)]}
        if kind == "as_sym_int":
            return {kind: self._sym_int_argument(inner, what)}
        if kind == "as_sym_ints":
            return {kind: [self._sym_int_argument(s, what) for s in self.listed(inner, what)]}
        scalars = {"as_int": self.integer, "as_bool": self.boolean, "as_float": self.number}
        if kind in scalars:
            return {kind: scalars[kind](inner, what)}
        if kind in ("as_ints", "as_bools", "as_floats"):
            check = scalars[kind[:-1]]
            return {kind: [check(v, what) for v in self.listed(inner, what)]}
        if kind == "as_scalar_type" and type(inner) is int and inner in DTYPES:
            return {kind: inner}
        if kind == "as_memory_format" and type(inner) is int and inner in MEMORY_FORMATS:
            return {kind: inner}
        if kind == "as_layout" and inner == STRIDED:
            return {kind: inner}
        if kind == "as_device":
            return {kind: self.device(inner, what)}
        raise self._unread(f"{what} is an argument of kind {shown(kind)}, which is not read")

    def _tensor_ref(self, value, what: str) -> dict:
        return {"name": self.name(value.get("name") if isinstance(value, dict) else None, what)}

    def _sym_int_argument(self, value, what: str) -> dict:
        kind, inner = self.tagged(value, what)
        if kind == "as_name":
            return {kind: self.name(inner, what)}
        if kind == "as_int":
            return {kind: self.integer(inner, what)}
        raise self._unread(f"{what}: a size of kind {shown(kind)}: allowed as_name, as_int")
