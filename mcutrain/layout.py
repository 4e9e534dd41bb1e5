"""Weight layouts on the device.

Every trainable layer's weight is stored output-channel-major in C: row ``co`` holds everything that
produces output channel ``co``. For conv2d and linear that is PyTorch's own layout; a transposed conv
(PyTorch ``[Cin, Cout/groups, kh, kw]``) is permuted to ``[Cout, Cin/groups, kh, kw]``. A channel-subset
update trains rows ``[0, channels)``.
"""

from __future__ import annotations

import numpy as np

from . import ir
from .plan import Update, UpdatePlan


def row_index(op: ir.Op, wshape: tuple[int, ...]) -> np.ndarray:
    """``[Cout, row_len]`` array of flat indices into the PyTorch-layout weight, in device order."""
    flat = np.arange(int(np.prod(wshape))).reshape(wshape)
    if isinstance(op, ir.ConvTranspose2d):
        cin, cout_g, kh, kw = wshape
        g = op.groups
        cin_g = cin // g
        # torch [g*cin_g + ci, j, a, b] -> device [gi*cout_g + j, ci, a, b]
        t = flat.reshape(g, cin_g, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
        return t.reshape(g * cout_g, cin_g * kh * kw)
    return flat.reshape(wshape[0], -1)


def device_weight(op: ir.Op, w: np.ndarray) -> np.ndarray:
    """The weight in device order, ``[Cout, row_len]``."""
    return w.reshape(-1)[row_index(op, w.shape)]


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
