"""Export fine-tuned parameters into a full-integer int8 ``.tflite`` (docs/export.md, docs/quantization.md).

The device trains its updated rows and biases in float32; the exported model stores them as TFLite does:
each updated weight row requantized symmetrically with its own new scale (``max |w| / 127``), each bias of
such a row (and each updated bias) as int32 with ``scale = input scale x weight scale``. Frozen rows keep
their integers and scales; every other byte of the file stays the same (the scale and zero-point vectors
are patched in place, so the flatbuffer's layout does not change). LiteRT derives each layer's
requantization multipliers from the scales when it loads the model.

Where each IR parameter element lives in the file is read off the frontend itself, as for float models
(:func:`mcutrain.host.export.trace_sources`): the quantized weight and bias tensors are turned into float
tensors of element ids and imported.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.schema_py_generated import TensorType as TT

from mcutrain.core import ir
from mcutrain.core.quant import round_half_away
from mcutrain.host.export import ExportError, Params, trace_sources
from mcutrain.train.update_plan import Update, UpdatePlan


@dataclass(frozen=True)
class _Buffer:
    """A quantized constant's storage in the file: its data and the scale vector of its quantization."""

    tensor: int
    start: int  # byte offset of the data
    numel: int
    itemsize: int  # 1 (int8 weights) or 4 (int32 biases)
    scale_start: int  # byte offset of the float32 scale vector
    shape: tuple[int, ...]
    axis: int  # the quantized dimension


def _quantized_consts(data: bytes) -> dict[str, _Buffer]:
    """Buffer index -> storage of every int8 / int32 constant with a scale (weights and biases)."""
    root = tfl.Model.GetRootAs(data, 0)
    sg = root.Subgraphs(0)
    out: dict[str, _Buffer] = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        q = t.Quantization()
        if t.Type() not in (TT.INT8, TT.INT32) or t.Buffer() <= 0 or q is None or not q.ScaleLength():
            continue
        buf = root.Buffers(t.Buffer())
        if not buf.DataLength():
            continue  # not constant (or stored outside the flatbuffer: not supported here)
        size = 1 if t.Type() == TT.INT8 else 4
        shape = tuple(int(v) for v in t.ShapeAsNumpy())
        if buf.DataLength() != size * int(np.prod(shape)):
            continue
        out[str(t.Buffer())] = _Buffer(
            i,
            buf._tab.Vector(buf._tab.Offset(4)),
            int(np.prod(shape)),
            size,
            q._tab.Vector(q._tab.Offset(8)),
            shape,
            int(q.QuantizedDimension()),
        )
    return out


def _import_with_ids(data: bytes, path: Path, ids: Mapping[str, np.ndarray]) -> Params:
    """Import the model with each traced constant turned into a float32 tensor holding ``ids``."""
    from mcutrain.frontends.tflite import Converter
    from mcutrain.frontends.tflite_file import parse_model, single_subgraph

    model = parse_model(data, path)
    sg = single_subgraph(model, path)
    for t in sg.tensors:
        if str(t.buffer) in ids:
            t.type, t.quantization = TT.FLOAT32, None
    for k, v in ids.items():
        buf = model.buffers[int(k)]
        buf.data, buf.offset, buf.size = np.frombuffer(v.astype("<f4").tobytes(), np.uint8), 0, 0
    return Converter(model, sg, data, path.stem).convert().params


def _requantize_rows(w: np.ndarray, rows: int, old: np.ndarray, old_scale: np.ndarray) -> tuple:
    """The first ``rows`` output channels of float weight ``w`` (IR layout, channels first) as int8.

    Per-channel scales: each updated row gets its own symmetric scale ``max |w| / 127``; the other rows
    keep their integers and scales. A per-tensor scale (one for the whole weight) stays if the updated
    rows fit in it, else grows to fit them and every row is requantized to it. Returns (ints, scales)."""
    ints, scales = old.copy(), old_scale.astype(np.float32).copy()
    if scales.size == 1:
        need = np.float32(np.abs(w[:rows]).max() / np.float32(127.0)) if rows else np.float32(0)
        if need > scales[0]:
            scales[0] = need
            rows = len(w)  # the frozen rows too, to the larger step
        per_row = np.full(len(w), scales[0], np.float32)
    else:
        for co in range(rows):
            amax = np.float32(np.abs(w[co]).max())
            if amax > 0:
                scales[co] = amax / np.float32(127.0)
        per_row = scales
    for co in range(rows):
        ints[co] = np.clip(round_half_away(w[co].astype(np.float32) / per_row[co]), -127, 127)
    return ints.astype(np.int8), scales


def export_tflite_int8(
    source: str | Path, graph: ir.Graph, plan: UpdatePlan, params: Params, out: str | Path
) -> int:
    """Write ``source`` (a full-integer model, imported as ``graph``) with the updated layers of ``plan``
    holding ``params`` (IR layouts) to ``out``. Returns how many integer values changed."""
    from mcutrain.frontends.tflite import load_tflite

    path = Path(source)
    data = path.read_bytes()
    if load_tflite(path).fingerprint() != graph.fingerprint():
        raise ExportError(f"{path} is not the model the plan was made for (its model hash differs)")
    where = _quantized_consts(data)
    shapes = {k: np.zeros(b.numel, np.float32) for k, b in where.items()}
    trace = trace_sources(shapes, lambda v: _import_with_ids(data, path, v))
    starts = np.cumsum([0, *(b.numel for b in where.values())])
    keys = list(where)

    def locate(key: str) -> tuple[_Buffer, np.ndarray]:
        """The one constant that holds IR parameter ``key``, and each element's index in it."""
        idx = trace[key].ravel()
        owners = set(np.searchsorted(starts, idx, side="right") - 1) if (idx >= 0).all() else {-1}
        if len(owners) != 1 or -1 in owners:
            raise ExportError(f"{key}: its values are not one int8/int32 tensor of {path}; cannot export")
        j = int(owners.pop())
        return where[keys[j]], idx - starts[j]

    patched = bytearray(data)
    changed = 0
    for lu in plan.trained:
        node = graph.node(lu.name)
        wkey, bkey = node.param_key("weight"), node.param_key("bias")
        if not isinstance(node.op, (ir.Conv2d, ir.Linear)) or wkey not in graph.qvalues:
            raise ExportError(f"{lu.name}: only int8 conv2d and linear layers can be exported into {path}")
        rows = lu.channels if lu.update is Update.WEIGHT else 0
        w_old, b_old = graph.qvalues[wkey], graph.qvalues[bkey]
        ints, wscale = _requantize_rows(params[wkey], rows, w_old, np.asarray(graph.quant[wkey].scale))
        bscale = (np.float32(graph.quant[node.inputs[0]].scale[0]) * wscale).astype(np.float32)
        grown = wscale.size == 1 and wscale[0] != graph.quant[wkey].scale[0]  # every row requantized
        redo = np.ones(len(b_old), bool) if lu.bias or grown else np.arange(len(b_old)) < rows
        b_new = b_old.copy()
        per_row = np.broadcast_to(bscale, b_old.shape).astype(np.float64)
        q = round_half_away(params[bkey].astype(np.float64)[redo] / per_row[redo])
        b_new[redo] = np.clip(q, -(2**31), 2**31 - 1)
        for key, new, old, scales in ((wkey, ints, w_old, wscale), (bkey, b_new, b_old, bscale)):
            buf, idx = locate(key)
            fmt = "b" if buf.itemsize == 1 else "<i"
            for v, i in zip(new.reshape(-1), idx, strict=True):
                struct.pack_into(fmt, patched, buf.start + buf.itemsize * int(i), int(v))
            if scales.size == 1:
                struct.pack_into("<f", patched, buf.scale_start, float(scales[0]))
            else:  # the IR's output channel co is the file's channel c along its quantized dimension
                channel = np.unravel_index(idx.reshape(len(new), -1)[:, 0], buf.shape)[buf.axis]
                for co, c in enumerate(channel):
                    struct.pack_into("<f", patched, buf.scale_start + 4 * int(c), float(scales[co]))
            changed += int(np.sum(new.reshape(-1) != old.reshape(-1)))
    Path(out).write_bytes(bytes(patched))
    _check(out, graph, plan, params)
    return changed


def _check(out: str | Path, graph: ir.Graph, plan: UpdatePlan, params: Params) -> None:
    """The written model re-imports with every frozen integer unchanged and each updated layer within half
    a quantization step of the trained values."""
    from mcutrain.frontends.tflite import load_tflite

    got = load_tflite(out)
    trained = {lu.name for lu in plan.trained}
    for key, v in graph.qvalues.items():
        if key.rsplit(".", 1)[0] not in trained and not np.array_equal(got.qvalues[key], v):
            raise ExportError(f"internal error: {out} changed the frozen parameter {key}")
    for name in trained:
        for p in ("weight", "bias"):
            key = f"{name}.{p}"
            half = got.quant[key].scales(params[key].ndim) / 2
            if np.any(np.abs(got.params[key] - params[key]) > half * (1 + 1e-5) + 1e-12):
                raise ExportError(f"internal error: {out} does not hold the trained {key}")
