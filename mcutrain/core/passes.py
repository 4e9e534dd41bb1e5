"""Graph-to-graph passes over :class:`mcutrain.core.graph.Graph`: each takes a graph and returns a new one
that computes the same function (up to float32 round-off).

* :func:`fold_batchnorm` removes every :class:`~mcutrain.core.ops.BatchNorm`: folded into the preceding
  conv / transposed conv / linear when that layer feeds only the batch norm, otherwise replaced by a
  :class:`~mcutrain.core.ops.ChannelAffine` (``scale = gamma / sqrt(var + eps)``,
  ``shift = beta - mean * scale``).
* :func:`remove_identities` drops reshapes that change nothing and merges chains of reshapes.

Folding arithmetic runs in float64 and rounds once to float32.
"""

from __future__ import annotations

import numpy as np

from mcutrain.core.ir import BatchNorm, ChannelAffine, Conv2d, ConvTranspose2d, Graph, Linear, Node, Reshape

_FOLDABLE = (Conv2d, ConvTranspose2d, Linear)


def fold_batchnorm(graph: Graph) -> Graph:
    """Return ``graph`` without BatchNorm nodes (see the module docstring)."""
    while True:
        bn = next((n for n in graph.nodes if isinstance(n.op, BatchNorm)), None)
        if bn is None:
            return graph
        graph = _fold_one(graph, bn)


def bn_scale_shift(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, shift)`` of an inference batch norm, in float64."""
    assert isinstance(bn.op, BatchNorm)
    p = {k: graph.param(bn.name, k).astype(np.float64) for k in bn.op.param_names}
    scale = p["gamma"] / np.sqrt(p["var"] + bn.op.eps)
    return scale, p["beta"] - p["mean"] * scale


def _producer(graph: Graph, tensor: str) -> Node | None:
    return next((n for n in graph.nodes if n.name == tensor), None)


def _fold_one(graph: Graph, bn: Node) -> Graph:
    scale, shift = bn_scale_shift(graph, bn)
    src = bn.inputs[0]
    prod = _producer(graph, src)
    sole_use = [n.name for n in graph.consumers(src)] == [bn.name] and src not in graph.outputs
    if prod is not None and isinstance(prod.op, _FOLDABLE) and sole_use:
        return _fold_into(graph, prod, bn, scale, shift)
    return _to_affine(graph, bn, scale, shift)


def scaled_weight(node: Node, w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scale the weight rows that produce each output channel."""
    if isinstance(node.op, ConvTranspose2d):  # [Cin, Cout/groups, kh, kw]
        g = node.op.groups
        cin, cog = w.shape[0], w.shape[1]
        grouped = w.reshape(g, cin // g, cog, *w.shape[2:]) * scale.reshape(g, 1, cog, 1, 1)
        return grouped.reshape(w.shape)
    return w * scale.reshape((-1,) + (1,) * (w.ndim - 1))


def _fold_into(graph: Graph, prod: Node, bn: Node, scale: np.ndarray, shift: np.ndarray) -> Graph:
    params = {k: v for k, v in graph.params.items() if not k.startswith(f"{bn.name}.")}
    w = graph.param(prod.name, "weight").astype(np.float64)
    b = graph.param(prod.name, "bias").astype(np.float64)
    params[prod.param_key("weight")] = scaled_weight(prod, w, scale).astype(np.float32)
    params[prod.param_key("bias")] = (b * scale + shift).astype(np.float32)
    nodes = [n for n in graph.nodes if n.name != bn.name]
    return _rebuild(graph, nodes, bn.name, prod.name, params)


def _to_affine(graph: Graph, bn: Node, scale: np.ndarray, shift: np.ndarray) -> Graph:
    params = {k: v for k, v in graph.params.items() if not k.startswith(f"{bn.name}.")}
    params[bn.param_key("weight")] = scale.astype(np.float32)
    params[bn.param_key("bias")] = shift.astype(np.float32)
    nodes = [Node(n.name, ChannelAffine(), n.inputs) if n.name == bn.name else n for n in graph.nodes]
    return graph.replace(nodes=tuple(nodes), params=params)


def _rebuild(graph: Graph, nodes: list[Node], old: str, new: str, params: dict[str, np.ndarray]) -> Graph:
    """Replace every use of tensor ``old`` by ``new`` (node inputs and graph outputs)."""
    renamed = tuple(Node(n.name, n.op, tuple(new if i == old else i for i in n.inputs)) for n in nodes)
    outputs = tuple(new if o == old else o for o in graph.outputs)
    return graph.replace(nodes=renamed, outputs=outputs, params=params)


def remove_identities(graph: Graph) -> Graph:
    """Drop reshapes to the same shape and merge reshape chains (``a -> r1 -> r2`` becomes ``a -> r2``
    when ``r1`` has no other use)."""
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            if not isinstance(node.op, Reshape):
                continue
            src = node.inputs[0]
            if graph.shapes[src] == graph.shapes[node.name]:
                nodes = [n for n in graph.nodes if n.name != node.name]
                graph = _rebuild(graph, nodes, node.name, src, dict(graph.params))
                changed = True
                break
            prev = _producer(graph, src)
            if prev is not None and isinstance(prev.op, Reshape) and _sole_use(graph, src, node):
                nodes = [
                    Node(n.name, n.op, prev.inputs) if n is node else n for n in graph.nodes if n is not prev
                ]
                graph = graph.replace(nodes=tuple(nodes))
                changed = True
                break
    return graph


def _sole_use(graph: Graph, tensor: str, consumer: Node) -> bool:
    return [n.name for n in graph.consumers(tensor)] == [consumer.name] and tensor not in graph.outputs
