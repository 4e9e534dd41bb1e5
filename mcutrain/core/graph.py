"""The mcutrain IR's graph: nodes over named per-sample tensors, validated and shape-inferred at
construction, with JSON I/O and a fingerprint (the model hash that plans and firmware carry).

A node's output tensor has the node's name; graph inputs are tensors that no node produces; nodes are
stored in a topological order, which is also the forward execution order. The conventions of tensors and
parameters are those of :mod:`mcutrain.core.ops`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from mcutrain.core.ops import OP_TYPES, TRAINABLE_OPS, ActFn, IRError, Op, Shape, UpsampleMode

# ---------------------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]

    def param_key(self, pname: str) -> str:
        return f"{self.name}.{pname}"


@dataclass(frozen=True, eq=False)
class Graph:
    """A validated, shape-inferred inference graph.

    ``params`` maps ``"<node>.<param>"`` to float32 arrays (read-only copies). ``shapes`` (derived at
    construction) maps every tensor name to its per-sample shape.
    """

    name: str
    inputs: tuple[tuple[str, Shape], ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, np.ndarray]
    shapes: Mapping[str, Shape] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frozen_params = {}
        for k, v in self.params.items():
            a = np.array(v, dtype=np.float32, copy=True)
            a.setflags(write=False)
            frozen_params[k] = a
        object.__setattr__(self, "params", MappingProxyType(frozen_params))
        object.__setattr__(self, "shapes", MappingProxyType(self._infer_shapes()))

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for name, shape in self.inputs:
            if name in shapes:
                raise IRError(f"duplicate graph input {name!r}")
            if not shape or any(int(d) <= 0 for d in shape):
                raise IRError(f"graph input {name!r} has an invalid shape {shape}")
            shapes[name] = tuple(int(d) for d in shape)
        expected_params: set[str] = set()
        for node in self.nodes:
            if node.name in shapes:
                raise IRError(f"tensor name {node.name!r} is defined twice")
            for i in node.inputs:
                if i not in shapes:
                    raise IRError(
                        f"node {node.name!r} ({node.op.kind}) reads {i!r}, which is not defined before it"
                    )
            n = node.op.arity
            if (n >= 0 and len(node.inputs) != n) or (n < 0 and not node.inputs):
                raise IRError(f"node {node.name!r} ({node.op.kind}) takes {n} inputs, got {len(node.inputs)}")
            ins = [shapes[i] for i in node.inputs]
            try:
                out = node.op.out_shape(ins)
            except IRError as e:
                raise IRError(f"node {node.name!r}: {e}") from None
            for pname, pshape in node.op.param_shapes(ins).items():
                key = node.param_key(pname)
                expected_params.add(key)
                if key not in self.params:
                    raise IRError(f"node {node.name!r} is missing parameter {key!r}")
                if tuple(self.params[key].shape) != tuple(pshape):
                    raise IRError(
                        f"parameter {key!r} has shape {tuple(self.params[key].shape)}, expected {pshape}"
                    )
            shapes[node.name] = tuple(int(d) for d in out)
        extra = set(self.params) - expected_params
        if extra:
            raise IRError(f"parameters not used by any node: {sorted(extra)[:5]}")
        for o in self.outputs:
            if o not in shapes:
                raise IRError(f"graph output {o!r} is not defined")
        return shapes

    # -- queries ------------------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in graph {self.name!r}")

    def param(self, node: str, pname: str) -> np.ndarray:
        return self.params[f"{node}.{pname}"]

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def trainable_nodes(self) -> list[Node]:
        return [n for n in self.nodes if isinstance(n.op, TRAINABLE_OPS)]

    def in_shapes(self, node: Node) -> list[Shape]:
        return [self.shapes[i] for i in node.inputs]

    def macs(self) -> int:
        return sum(n.op.macs(self.in_shapes(n), self.shapes[n.name]) for n in self.nodes)

    def num_params(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def replace(self, **changes: Any) -> Graph:
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        kw.update(changes)
        return Graph(**kw)

    # -- serialization ------------------------------------------------------------------------------

    def to_dict(self, with_params: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": "mcutrain-graph/1",
            "name": self.name,
            "inputs": [{"name": n, "shape": list(s)} for n, s in self.inputs],
            "outputs": list(self.outputs),
            "nodes": [
                {"name": n.name, "op": n.op.kind, "attrs": _attrs_to_json(n.op), "inputs": list(n.inputs)}
                for n in self.nodes
            ],
        }
        if with_params:
            d["params"] = {
                k: {
                    "shape": list(v.shape),
                    "f32le": base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode(),
                }
                for k, v in sorted(self.params.items())
            }
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Graph:
        if d.get("format") != "mcutrain-graph/1":
            raise IRError(f"not an mcutrain graph (format={d.get('format')!r})")
        nodes = []
        for nd in d["nodes"]:
            if nd["op"] not in OP_TYPES:
                raise IRError(f"unknown op kind {nd['op']!r} in node {nd['name']!r}")
            nodes.append(
                Node(nd["name"], _attrs_from_json(OP_TYPES[nd["op"]], nd["attrs"]), tuple(nd["inputs"]))
            )
        params = {
            k: np.frombuffer(base64.b64decode(v["f32le"]), dtype="<f4").reshape(v["shape"])
            for k, v in d.get("params", {}).items()
        }
        return Graph(
            name=d["name"],
            inputs=tuple((i["name"], tuple(i["shape"])) for i in d["inputs"]),
            nodes=tuple(nodes),
            outputs=tuple(d["outputs"]),
            params=params,
        )

    @staticmethod
    def from_json(text: str) -> Graph:
        return Graph.from_dict(json.loads(text))

    def fingerprint(self) -> str:
        """SHA-256 of the structure and the parameter bytes: the model hash that plans and firmware carry."""
        h = hashlib.sha256(json.dumps(self.to_dict(with_params=False), sort_keys=True).encode())
        for k in sorted(self.params):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.params[k], dtype="<f4").tobytes())
        return h.hexdigest()


def _attrs_to_json(op: Op) -> dict[str, Any]:
    out = {}
    for k, v in asdict(op).items():
        out[k] = v.value if isinstance(v, enum.Enum) else (list(v) if isinstance(v, tuple) else v)
    return out


def _attrs_from_json(cls: type[Op], attrs: Mapping[str, Any]) -> Op:
    kw: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in attrs:
            continue
        v = attrs[f.name]
        if isinstance(v, list):
            v = tuple(v)
        if f.type in ("ActFn",):
            v = ActFn(v)
        elif f.type in ("UpsampleMode",):
            v = UpsampleMode(v)
        kw[f.name] = v
    return cls(**kw)


class GraphBuilder:
    """Convenience for frontends and tests: add nodes in order, get a validated :class:`Graph`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._inputs: list[tuple[str, Shape]] = []
        self._nodes: list[Node] = []
        self._params: dict[str, np.ndarray] = {}
        self._names: set[str] = set()

    def unique(self, base: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base) or "t"
        if base[0].isdigit():
            base = "n" + base
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def input(self, name: str, shape: Iterable[int]) -> str:
        name = self.unique(name)
        self._inputs.append((name, tuple(int(d) for d in shape)))
        return name

    def add(self, name: str, op: Op, inputs: Iterable[str], **params: np.ndarray) -> str:
        name = self.unique(name)
        self._nodes.append(Node(name, op, tuple(inputs)))
        for k, v in params.items():
            self._params[f"{name}.{k}"] = np.asarray(v, dtype=np.float32)
        return name

    def build(self, outputs: Iterable[str]) -> Graph:
        return Graph(self.name, tuple(self._inputs), tuple(self._nodes), tuple(outputs), self._params)
