"""The trainable state of a plan: which values train, their bytes, their device order (``mt_export_params``)
and the vectors a checkpoint keeps.
"""

from __future__ import annotations

import numpy as np

from mcutrain.core import ir
from mcutrain.core.layout import c_ident, device_weight, row_index
from mcutrain.core.units import F32
from mcutrain.train.update_plan import OptimizerKind, Update, UpdatePlan


def trainable_bytes(graph: ir.Graph, plan: UpdatePlan) -> dict[str, tuple[int, int]]:
    """Per updated layer: (trainable floats, frozen floats) of its weight and bias."""
    out = {}
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        w = graph.param(node.name, "weight")
        rows = weight_rows(node.op, w.shape)
        row = w.size // rows
        n_train = lu.channels * row + (graph.shapes[node.name][0] if lu.bias else 0)
        n_total = w.size + graph.param(node.name, "bias").size
        out[node.name] = (n_train * F32, (n_total - n_train) * F32)
    return out


def weight_rows(op: ir.Op, wshape: tuple[int, ...]) -> int:
    """Number of output-channel rows of a weight (transposed conv is stored output-major in C)."""
    if isinstance(op, ir.ConvTranspose2d):
        return wshape[1] * op.groups
    return wshape[0]


def unflatten_params(graph: ir.Graph, plan: UpdatePlan, flat: np.ndarray) -> dict[str, np.ndarray]:
    """All of ``graph``'s parameters (PyTorch layouts) with the trainable ones taken from ``flat``, the
    device's export order (``mt_export_params``: per updated layer its weight rows, then its bias)."""
    out = {k: v.copy() for k, v in graph.params.items()}
    off = 0
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        if lu.update is Update.WEIGHT:
            w = out[f"{node.name}.weight"]
            idx = row_index(node.op, w.shape)[: lu.channels].reshape(-1)
            w.reshape(-1)[idx] = flat[off : off + idx.size]
            off += idx.size
        if lu.bias:
            b = out[f"{node.name}.bias"]
            b[:] = flat[off : off + b.size]
            off += b.size
    if off != flat.size:
        raise ValueError(f"{flat.size} trainable values given, the plan has {off}")
    return out


def trainable_vectors(graph: ir.Graph, plan: UpdatePlan, params: dict[str, np.ndarray]) -> list:
    """(C name, device-order values) of every trainable vector, in mt_export_params order."""
    out = []
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        base = c_ident(node.name)
        if lu.update is Update.WEIGHT:
            w = device_weight(node.op, params[f"{node.name}.weight"])[: lu.channels]
            out.append((f"{base}_w", w.reshape(-1).astype(np.float32)))
        if lu.bias:
            out.append((f"{base}_b", params[f"{node.name}.bias"].reshape(-1).astype(np.float32)))
    return out


def trainable_names(graph: ir.Graph, plan: UpdatePlan) -> list[str]:
    """C names of the trainable vectors of mt_model.c, in mt_export_params order (as trainable_vectors)."""
    out = []
    for node in graph.trainable_nodes():
        lu = plan.layer(node.name)
        base = c_ident(node.name)
        if lu.update is Update.WEIGHT:
            out.append(f"{base}_w")
        if lu.bias:
            out.append(f"{base}_b")
    return out


def checkpoint_state_names(graph: ir.Graph, plan: UpdatePlan) -> list[str]:
    """C names of what a checkpoint keeps: the trainable vectors, then the optimizer's moments."""
    names = trainable_names(graph, plan)
    kind = plan.optimizer.kind
    moments = [f"{n}_m" for n in names] if kind is not OptimizerKind.SGD else []
    return names + moments + ([f"{n}_v" for n in names] if kind is OptimizerKind.ADAM else [])
