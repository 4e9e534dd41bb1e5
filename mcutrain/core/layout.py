"""Weight layouts on the device.

Every trainable layer's weight is stored output-channel-major in C: row ``co`` holds everything that
produces output channel ``co``. For conv2d and linear that is PyTorch's own layout; a transposed conv
(PyTorch ``[Cin, Cout/groups, kh, kw]``) is permuted to ``[Cout, Cin/groups, kh, kw]``. A channel-subset
update trains rows ``[0, channels)`` (:func:`mcutrain.train.trainable.unflatten_params`).
"""

from __future__ import annotations

import numpy as np

from mcutrain.core import ir


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


def c_ident(name: str) -> str:
    """The C identifier of a layer's arrays and dims in generated code: ``l_`` + the name, other characters
    than letters, digits and ``_`` replaced by ``_``."""
    s = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return "l_" + s
