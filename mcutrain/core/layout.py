"""Weight layouts on the device (output-channel-major rows)."""

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
