"""Post-training quantization of a float model's frozen part (``mcutrain plan --frozen-precision int8 --calib
DATA.npz``): TFLite's full-integer scheme, so that the int8 kernels run it exactly as LiteRT would run the
same model converted with a representative dataset.

* Weights of conv2d and linear layers: int8, symmetric, one scale per output channel
  (``max |w| / 127``); biases int32 with ``scale = input scale x weight scale``.
* Activations: int8, one scale and zero point per tensor, from the range (min and max, widened to include
  0) the calibration inputs reach in the float model. A layer whose only consumer is a ReLU or ReLU6 takes
  the activation's quantization, as TFLite's fused activations do; a reshape, pool (max or average) or
  pad keeps its input's; a softmax has scale 1/256 and zero point -128.

The float parameters stay as they were: layers the plan updates start from them (float32 master copies),
frozen int8 layers run the integers. See docs/quantization.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from mcutrain.core import ir, semantics
from mcutrain.core.quant import Quant, round_half_away
from mcutrain.train.precision import int8_capable
from mcutrain.train.update_plan import PlanError

#: Ops whose output keeps the input's quantization (TFLite requires it or makes it so).
_SAME_AS_INPUT = (ir.Reshape, ir.MaxPool2d, ir.AvgPool2d, ir.Pad)
SOFTMAX_QUANT = Quant.per_tensor(1.0 / 256.0, -128)


def activation_quant(lo: float, hi: float) -> Quant:
    """TFLite's asymmetric int8 quantization of the range [lo, hi], widened to include 0 exactly."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return Quant.per_tensor(scale, zp)


def weight_quant(w: np.ndarray) -> tuple[Quant, np.ndarray]:
    """Per-output-channel symmetric int8 quantization of a weight (axis 0) and its integers."""
    amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float32)
    scale = np.where(amax > 0, amax / np.float32(127.0), np.float32(1e-8)).astype(np.float32)
    q = Quant(tuple(float(s) for s in scale), (0,) * len(scale))
    ints = np.clip(round_half_away(w.astype(np.float32) / q.scales(w.ndim)), -127, 127).astype(np.int8)
    return q, ints


def bias_quant(b: np.ndarray, x: Quant, w: Quant) -> tuple[Quant, np.ndarray]:
    scales = tuple(float(np.float32(x.scale[0]) * np.float32(s)) for s in w.scale)
    q = Quant(scales, (0,) * len(scales), "int32")
    ints = round_half_away(b.astype(np.float64) / np.asarray(scales, np.float64))
    lo, hi = q.range
    return q, np.clip(ints, lo, hi).astype(np.int32)


def ranges(graph: ir.Graph, x: np.ndarray, batch: int = 64) -> dict[str, tuple[float, float]]:
    """(min, max) every tensor reaches on the calibration inputs ``x`` in the float model."""
    out: dict[str, tuple[float, float]] = {}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            env = semantics.run_graph(
                graph, torch.from_numpy(np.ascontiguousarray(x[i : i + batch])), keep=True
            )
            for name, t in env.items():
                lo, hi = float(t.min()), float(t.max())
                old = out.get(name, (lo, hi))
                out[name] = (min(lo, old[0]), max(hi, old[1]))
    return out


def quantize_graph(graph: ir.Graph, x: np.ndarray) -> ir.Graph:
    """``graph`` with TFLite-style int8 quantization from the calibration inputs ``x`` (in the model's input
    layout, float32). Raises :class:`PlanError` for a graph that is quantized already or empty data."""
    if graph.quantized:
        raise PlanError(f"{graph.name} is quantized already: plan it with --frozen-precision int8 directly")
    if len(x) == 0 or not np.all(np.isfinite(x)):
        raise PlanError("post-training quantization needs finite calibration inputs (--calib DATA.npz)")
    r = ranges(graph, np.asarray(x, np.float32))
    quant: dict[str, Quant] = {name: activation_quant(*r[name]) for name, _ in graph.inputs}
    consumers: Mapping[str, list[ir.Node]] = {n.name: graph.consumers(n.name) for n in graph.nodes}
    for n in graph.nodes:
        if isinstance(n.op, ir.Softmax):
            quant[n.name] = SOFTMAX_QUANT
        elif isinstance(n.op, _SAME_AS_INPUT) and n.inputs[0] in quant:
            quant[n.name] = quant[n.inputs[0]]
        else:
            quant[n.name] = activation_quant(*r[n.name])
        fused = consumers[n.name]
        if len(fused) == 1 and isinstance(fused[0].op, ir.Activation) and fused[0].op.fn in _FUSED:
            quant[n.name] = activation_quant(0.0, r[fused[0].name][1])  # the activation's, as TFLite fuses it
    for n in graph.nodes:  # a fused activation's output is its producer's
        if isinstance(n.op, ir.Activation) and n.op.fn in _FUSED:
            quant[n.name] = quant[n.inputs[0]]
    qvalues: dict[str, np.ndarray] = {}
    for n in graph.nodes:
        if isinstance(n.op, (ir.Conv2d, ir.Linear)):
            wkey, bkey = n.param_key("weight"), n.param_key("bias")
            quant[wkey], qvalues[wkey] = weight_quant(graph.params[wkey])
            quant[bkey], qvalues[bkey] = bias_quant(graph.params[bkey], quant[n.inputs[0]], quant[wkey])
    q = graph.replace(quant=quant, qvalues=qvalues)
    if not any(int8_capable(q, n) for n in q.nodes):
        raise PlanError(
            f"{graph.name} has no layer with an int8 kernel: --frozen-precision int8 changes nothing"
        )
    return q


_FUSED = (ir.ActFn.RELU, ir.ActFn.RELU6)
