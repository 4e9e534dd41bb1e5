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
from mcutrain.core.quant import Quant

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

    ``params`` maps ``"<node>.<param>"`` to float32 arrays (read-only copies): the real values. ``shapes``
    (derived at construction) maps every tensor name to its per-sample shape.

    A quantized model (an int8 TFLite file, or a float model after post-training quantization) also has
    ``quant``: how tensors (by name) and parameters (by key) are stored as integers
    (:class:`~mcutrain.core.quant.Quant`), and ``qvalues``: the exact integer values of its quantized
    parameters (int8 weights, int32 biases; ``params`` holds their dequantized float32 values, which for
    large int32 biases are only close). Graphs without them are float graphs.
    """

    name: str
    inputs: tuple[tuple[str, Shape], ...]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, np.ndarray]
    quant: Mapping[str, Quant] = field(default_factory=dict)
    qvalues: Mapping[str, np.ndarray] = field(default_factory=dict)
    shapes: Mapping[str, Shape] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frozen_params = {}
        for k, v in self.params.items():
            a = np.array(v, dtype=np.float32, copy=True)
            a.setflags(write=False)
            frozen_params[k] = a
        object.__setattr__(self, "params", MappingProxyType(frozen_params))
        qvalues = {}
        for k, v in self.qvalues.items():
            a = np.array(v, copy=True)
            a.setflags(write=False)
            qvalues[k] = a
        object.__setattr__(self, "qvalues", MappingProxyType(qvalues))
        object.__setattr__(self, "quant", MappingProxyType(dict(self.quant)))
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
        self._check_quant(shapes)
        return shapes

    def _check_quant(self, shapes: Mapping[str, Shape]) -> None:
        for key, q in self.quant.items():
            if key not in shapes and key not in self.params:
                raise IRError(f"quantization given for {key!r}, which is no tensor or parameter of the graph")
            if q.per_channel:
                shape = shapes[key] if key in shapes else self.params[key].shape
                if q.axis >= len(shape) or shape[q.axis] != len(q.scale):
                    raise IRError(
                        f"{key!r}: {len(q.scale)} channel scales for shape {tuple(shape)} (axis {q.axis})"
                    )
        for key, v in self.qvalues.items():
            q = self.quant.get(key)
            if key not in self.params or q is None:
                raise IRError(f"integer values given for {key!r}, which is no quantized parameter")
            if v.shape != self.params[key].shape or v.dtype != np.dtype(q.dtype):
                want = f"{q.dtype}{self.params[key].shape}"
                raise IRError(f"{key!r}: integer values {v.dtype}{tuple(v.shape)} do not match {want}")

    @property
    def quantized(self) -> bool:
        return bool(self.quant)

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
        """A new graph with ``changes``. Quantization of tensors and parameters that no longer exist is
        dropped, and so are the integer values (and quantization) of parameters whose values changed."""
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        kw.update(changes)
        params = kw["params"]
        names = {n for n, _ in kw["inputs"]} | {n.name for n in kw["nodes"]}
        stale = {
            k for k in self.qvalues if k not in params or not np.array_equal(params[k], self.params.get(k))
        }
        if "quant" not in changes:
            kw["quant"] = {
                k: q for k, q in self.quant.items() if (k in names or k in params) and k not in stale
            }
        if "qvalues" not in changes:
            kw["qvalues"] = {k: v for k, v in self.qvalues.items() if k in params and k not in stale}
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
        if self.quant:  # absent in float graphs, whose JSON and fingerprint stay as they were
            d["quant"] = {k: q.to_dict() for k, q in sorted(self.quant.items())}
        if with_params:
            if self.qvalues:
                d["qvalues"] = {
                    k: {
                        "dtype": str(v.dtype),
                        "shape": list(v.shape),
                        "data": base64.b64encode(v.tobytes()).decode(),
                    }
                    for k, v in sorted(self.qvalues.items())
                }
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
        qvalues = {
            k: np.frombuffer(base64.b64decode(v["data"]), dtype=np.dtype(v["dtype"])).reshape(v["shape"])
            for k, v in d.get("qvalues", {}).items()
        }
        return Graph(
            name=d["name"],
            inputs=tuple((i["name"], tuple(i["shape"])) for i in d["inputs"]),
            nodes=tuple(nodes),
            outputs=tuple(d["outputs"]),
            params=params,
            quant={k: Quant.from_dict(q) for k, q in d.get("quant", {}).items()},
            qvalues=qvalues,
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
        for k in sorted(self.qvalues):  # quantized graphs only: float graphs hash as they always did
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.qvalues[k]).tobytes())
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

    def build(
        self,
        outputs: Iterable[str],
        quant: Mapping[str, Quant] | None = None,
        qvalues: Mapping[str, np.ndarray] | None = None,
    ) -> Graph:
        return Graph(
            self.name,
            tuple(self._inputs),
            tuple(self._nodes),
            tuple(outputs),
            self._params,
            quant or {},
            qvalues or {},
        )
