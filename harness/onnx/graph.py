"""One ONNX graph indexed once: which node produces a value and which nodes read it, so that
every walk of a user's file (upstream to its stored weights, downstream from a recurrent
node's outputs, through Identity/Cast chains) costs what it visits, never a scan of every
node per step. A file of 100,000 nodes is read in linear time."""

from __future__ import annotations

from collections.abc import Iterable


def declared_dims(value) -> list[int | None]:
    """Each axis of a graph value: its static size, or None where it is symbolic or unknown."""
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def attributes(node) -> dict:
    """A node's attributes by name, strings decoded."""
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key, value in values.items():
        if isinstance(value, bytes):
            values[key] = value.decode(errors="replace")
        elif isinstance(value, list):
            values[key] = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
    return values


class GraphIndex:
    """The nodes of one graph (by position, ONNX's topological order), each value's producer
    and its consumers."""

    def __init__(self, graph):
        self.nodes = list(graph.node)
        self._producer: dict[str, int] = {}
        self._consumers: dict[str, list[int]] = {}
        for position, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self._producer.setdefault(name, position)
            for name in dict.fromkeys(node.input):  # a node reading a value twice counts once
                if name:
                    self._consumers.setdefault(name, []).append(position)

    def producer(self, name: str):
        """The node that computes `name`, or None (a graph input, a stored value, unknown)."""
        position = self._producer.get(name)
        return None if position is None else self.nodes[position]

    def consumers(self, name: str) -> list:
        """The nodes that read `name`, in graph order."""
        return [self.nodes[p] for p in self._consumers.get(name, ())]

    def consumer_positions(self, name: str) -> list[int]:
        return list(self._consumers.get(name, ()))

    def positions_of(self, *op_types: str) -> list[int]:
        """The positions of the nodes of these op types, in graph order."""
        return [p for p, n in enumerate(self.nodes) if n.op_type in op_types]

    def downstream(self, names: Iterable[str]) -> set[str]:
        """`names` and every value computed from them."""
        reached = {n for n in names if n}
        todo, seen = list(reached), set()
        while todo:
            for position in self._consumers.get(todo.pop(), ()):
                if position in seen:
                    continue
                seen.add(position)
                for out in self.nodes[position].output:
                    if out and out not in reached:
                        reached.add(out)
                        todo.append(out)
        return reached

    def upstream(self, name: str, known: set[str] | frozenset = frozenset()) -> tuple[list, set]:
        """(the nodes `name` is computed by, transitively, in graph order, stopping at values in
        `known`; the values they read that no node computes: graph inputs, stored values)."""
        positions, leaves, todo = set(), set(), [name]
        visited = set()
        while todo:
            value = todo.pop()
            if value in visited:
                continue
            visited.add(value)
            position = self._producer.get(value)
            if value in known or position is None:
                leaves.add(value)
                continue
            if position not in positions:
                positions.add(position)
                todo.extend(i for i in self.nodes[position].input if i)
        return [self.nodes[p] for p in sorted(positions)], leaves

    def through(self, name: str, op_types: tuple[str, ...]):
        """(the value `name` is a copy of through nodes of `op_types`, the node that produced
        that value, or None)."""
        producer, seen = self.producer(name), set()
        while producer is not None and producer.op_type in op_types and producer.input:
            if name in seen:  # a cycle: no graph ONNX accepts has one
                break
            seen.add(name)
            name = producer.input[0]
            producer = self.producer(name)
        return name, producer

    def latest_ancestor(self, positions: list[int]) -> dict[str, int]:
        """For each value, the largest of `positions` (nodes, in graph order) among the nodes
        it is computed from, itself included for their outputs; absent where none is. One
        pass in graph order."""
        marked = set(positions)
        latest: dict[str, int] = {}
        for position, node in enumerate(self.nodes):
            found = max((latest[i] for i in node.input if i in latest), default=-1)
            if position in marked:
                found = position
            if found >= 0:
                for out in node.output:
                    if out:
                        latest[out] = found
        return latest
