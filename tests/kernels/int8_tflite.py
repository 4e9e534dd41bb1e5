"""One int8 TFLite operator in mcutrain's layout, run through the NumPy semantics and the C kernels.

:func:`adapt` turns an operator of a ``.tflite`` model (NHWC, TFLite weight layouts, options, the
tensors' quantization) into what the int8 kernels take: inputs in the IR layout (``(C, H, W)`` or
``(F,)``), PyTorch weight layouts, the IR op attributes, the dims struct and the integer parameters
(:mod:`mcutrain.core.int8_params`). :func:`run_numpy` and :func:`run_c` compute the op's output in the
IR layout; :func:`chw` converts LiteRT's output to it for the comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from mcutrain.core import int8_params as P
from mcutrain.core import int8_semantics as S
from mcutrain.core import ops
from mcutrain.core.op_spec import AVG_POOL2D_DIMS, CONV2D_DIMS, LINEAR_DIMS, MAX_POOL2D_DIMS, PAD_DIMS
from mcutrain.core.quant import Quant

from .ckernels import STRUCTS
from .s8kernels import S8Kernels

BO = tfl.BuiltinOperator
OP_NAMES = {v: k for k, v in vars(BO).items() if not k.startswith("_")}
ACTS = {
    tfl.ActivationFunctionType.NONE: "none",
    tfl.ActivationFunctionType.RELU: "relu",
    tfl.ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1",
    tfl.ActivationFunctionType.RELU6: "relu6",
}
_DTYPES = {tfl.TensorType.INT8: "int8", tfl.TensorType.INT32: "int32", tfl.TensorType.INT16: "int16"}


def chw(a: np.ndarray) -> np.ndarray:
    """A TFLite tensor with its batch axis of 1 in the IR layout: ``(1, H, W, C) -> (C, H, W)``,
    ``(1, F) -> (F,)`` (a flat vector otherwise)."""
    a = np.asarray(a)
    if a.ndim == 4:
        return np.ascontiguousarray(a[0].transpose(2, 0, 1))
    return np.ascontiguousarray(a.reshape(-1))


def chw_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[3], shape[1], shape[2]) if len(shape) == 4 else (int(np.prod(shape)),)


@dataclass
class Int8Case:
    """An op in the IR layout: its kind, inputs, weights, attributes, dims and integer parameters."""

    name: str
    kind: str
    xs: list[np.ndarray]
    out_shape: tuple[int, ...]
    params: object = None
    op: ops.Op | None = None
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    dims: dict[str, int] = field(default_factory=dict)
    dims_type: str = ""


def _same_padding(size: int, k: int, s: int, d: int, out: int) -> tuple[int, int]:
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _quant(t: tfl.TensorT, axis: int = 0) -> Quant:
    q = t.quantization
    scales = tuple(float(s) for s in q.scale)
    zps = tuple(int(z) for z in q.zeroPoint) or (0,) * len(scales)
    return Quant(scales, zps, _DTYPES.get(t.type, "int8"), axis)


def _pads(opt, x_shape, out_shape, kh, kw, dh=1, dw=1) -> ops.Pad4:  # type: ignore[no-untyped-def]
    if opt.padding == tfl.Padding.VALID:
        return (0, 0, 0, 0)
    t, b = _same_padding(x_shape[1], kh, opt.strideH, dh, out_shape[1])
    l, r = _same_padding(x_shape[2], kw, opt.strideW, dw, out_shape[2])
    return (t, b, l, r)


def adapt(model: tfl.ModelT, index: int, value: Callable[[int], np.ndarray]) -> Int8Case:
    """Operator ``index`` of the model's first subgraph; ``value(i)`` gives tensor ``i``'s data (NHWC)."""
    sg = model.subgraphs[0]
    o = sg.operators[index]
    oc = model.operatorCodes[o.opcodeIndex]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    kind = OP_NAMES[code]
    t_in = [sg.tensors[i] if i >= 0 else None for i in o.inputs]
    t_out = sg.tensors[o.outputs[0]]
    x_shape, out_shape = tuple(int(v) for v in t_in[0].shape), tuple(int(v) for v in t_out.shape)
    name = f"{index}:{kind}"
    opt = o.builtinOptions
    act = ACTS[opt.fusedActivationFunction] if hasattr(opt, "fusedActivationFunction") else "none"
    xq, yq = _quant(t_in[0]) if t_in[0].quantization else None, _quant(t_out) if t_out.quantization else None
    x = value(o.inputs[0])
    bias = value(o.inputs[2]) if len(o.inputs) > 2 and o.inputs[2] >= 0 else None
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = value(o.inputs[1])
        if kind == "CONV_2D":
            wt, groups = w.transpose(0, 3, 1, 2), 1
        else:
            wt, groups = w[0].transpose(2, 0, 1)[:, None], x_shape[3]
        cout, _, kh, kw = wt.shape
        dil = (opt.dilationHFactor, opt.dilationWFactor)
        op = ops.Conv2d(
            cout,
            (kh, kw),
            (opt.strideH, opt.strideW),
            _pads(opt, x_shape, out_shape, kh, kw, *dil),
            dil,
            groups,
        )
        q = P.conv2d_q8(xq, _quant(t_in[1]), yq, cout, act)
        ins, out = [chw_shape(x_shape)], chw_shape(out_shape)
        return Int8Case(
            name,
            "conv2d",
            [chw(x)],
            out,
            q,
            op,
            np.ascontiguousarray(wt),
            bias,
            CONV2D_DIMS.of(op, ins, out),
            CONV2D_DIMS.ctype,
        )
    if kind == "FULLY_CONNECTED":
        w = value(o.inputs[1])
        if len(x_shape) == 4:  # the IR flattens (C, H, W): permute the weight's columns to match
            h, wd, c = x_shape[1:]
            w = w[:, np.arange(h * wd * c).reshape(h, wd, c).transpose(2, 0, 1).reshape(-1)]
        n_out = w.shape[0]
        q = P.linear_q8(xq, _quant(t_in[1]), yq, n_out, act)
        op = ops.Linear(n_out)
        dims = LINEAR_DIMS.of(op, [(w.shape[1],)], (n_out,))
        return Int8Case(
            name, "linear", [chw(x)], (n_out,), q, op, np.ascontiguousarray(w), bias, dims, LINEAR_DIMS.ctype
        )
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        k = (opt.filterHeight, opt.filterWidth)
        pads = _pads(opt, x_shape, out_shape, *k)
        avg = kind == "AVERAGE_POOL_2D"
        op = (
            ops.AvgPool2d(k, (opt.strideH, opt.strideW), pads, False)
            if avg
            else ops.MaxPool2d(k, (opt.strideH, opt.strideW), pads)
        )
        ds = AVG_POOL2D_DIMS if avg else MAX_POOL2D_DIMS
        out = chw_shape(out_shape)
        return Int8Case(
            name,
            "avg_pool2d" if avg else "max_pool2d",
            [chw(x)],
            out,
            P.pool_q8(xq, yq, act),
            op,
            dims=ds.of(op, [chw_shape(x_shape)], out),
            dims_type=ds.ctype,
        )
    if kind == "RESHAPE":
        src, dst = chw_shape(x_shape), chw_shape(out_shape)
        if len(x_shape) == 4 and x_shape[3] > 1 and x_shape[1] * x_shape[2] > 1:
            raise NotImplementedError(f"{name}: a reshape that moves channels is a permutation in the IR")
        return Int8Case(name, "reshape", [chw(x)], dst, None, ops.Reshape(dst), dims={"n": int(np.prod(src))})
    if kind == "SOFTMAX":
        return Int8Case(name, "softmax", [chw(x)], chw_shape(out_shape), P.softmax_q8(xq, yq, opt.beta))
    if kind == "ADD":
        if tuple(t_in[1].shape) != x_shape:
            raise NotImplementedError(f"{name}: broadcasting add")
        q = P.add_q8(xq, _quant(t_in[1]), yq, act)
        return Int8Case(name, "add", [chw(x), chw(value(o.inputs[1]))], chw_shape(out_shape), q, ops.Add())
    if kind == "MEAN":
        axes = sorted(int(a) % 4 for a in value(o.inputs[1]).reshape(-1))
        if len(x_shape) != 4 or axes != [1, 2]:
            raise NotImplementedError(f"{name}: only the mean over H and W")
        q = P.global_avg_pool_q8(xq, yq, x_shape[1] * x_shape[2])
        return Int8Case(name, "global_avg_pool", [chw(x)], (x_shape[3],), q, ops.GlobalAvgPool())
    if kind == "PAD":
        p = value(o.inputs[1]).reshape(4, 2)
        op = ops.Pad((int(p[1, 0]), int(p[1, 1]), int(p[2, 0]), int(p[2, 1])))
        out = chw_shape(out_shape)
        return Int8Case(
            name,
            "pad",
            [chw(x)],
            out,
            P.pad_value(xq, yq),
            op,
            dims=PAD_DIMS.of(op, [chw_shape(x_shape)], out),
            dims_type=PAD_DIMS.ctype,
        )
    if kind == "CONCATENATION":
        if len(x_shape) != 4 or opt.axis % 4 != 3:
            raise NotImplementedError(f"{name}: only the concatenation of channels")
        luts = P.concat_q8([_quant(t) for t in t_in], yq)
        return Int8Case(
            name, "concat", [chw(value(i)) for i in o.inputs], chw_shape(out_shape), luts, ops.Concat()
        )
    if kind == "QUANTIZE":
        return Int8Case(name, "quantize", [chw(x)], chw_shape(out_shape), P.quantize_q8(yq))
    if kind == "DEQUANTIZE":
        return Int8Case(name, "dequantize", [chw(x)], chw_shape(out_shape), P.dequantize_q8(xq))
    if kind == "LEAKY_RELU":
        return Int8Case(
            name, "leaky_relu", [chw(x)], chw_shape(out_shape), P.leaky_relu_q8(xq, yq, opt.alpha)
        )
    if kind == "LOGISTIC":
        return Int8Case(name, "logistic", [chw(x)], chw_shape(out_shape), P.logistic_q8(xq, yq))
    raise NotImplementedError(f"{name}: no int8 semantics for {kind}")


def run_numpy(c: Int8Case) -> np.ndarray:
    x = c.xs[0]
    if c.kind == "conv2d":
        return S.conv2d_s8(x, c.w, c.b, c.op, c.params)
    if c.kind == "linear":
        return S.linear_s8(x, c.w, c.b, c.params)
    if c.kind == "avg_pool2d":
        return S.avg_pool2d_s8(x, c.op, c.params)
    if c.kind == "max_pool2d":
        return S.max_pool2d_s8(x, c.op, c.params)
    if c.kind == "reshape":
        return S.reshape_s8(x, c.out_shape)
    if c.kind == "add":
        return S.add_s8(x, c.xs[1], c.params)
    if c.kind == "concat":
        return S.concat_s8(c.xs, c.params)
    if c.kind == "pad":
        return S.pad_s8(x, c.op, c.params)
    fn = {
        "softmax": S.softmax_s8,
        "global_avg_pool": S.global_avg_pool_s8,
        "quantize": S.quantize_s8,
        "dequantize": S.dequantize_s8,
        "leaky_relu": S.leaky_relu_s8,
        "logistic": S.logistic_s8,
    }[c.kind]
    return fn(x, c.params)


def _ranges(n: int) -> list[tuple[int, int]]:
    """Two output-channel ranges when there are at least two channels (the range interface)."""
    k = max(1, n // 3)
    return [(0, k), (k, n)] if n > 1 else [(0, n)]


def run_c(k: S8Kernels, c: Int8Case) -> np.ndarray:
    """The C kernel's output in the IR layout (conv2d and linear computed over two channel ranges)."""
    dims = STRUCTS[c.dims_type](**c.dims) if c.dims_type else None
    x = c.xs[0]
    if c.kind == "conv2d":
        return k.conv2d(dims, c.params, x, c.w, c.b, _ranges(dims.out_c))
    if c.kind == "linear":
        return k.linear(dims, c.params, x, c.w, c.b, _ranges(dims.out_features))
    if c.kind == "avg_pool2d":
        return k.avg_pool2d(dims, c.params, x)
    if c.kind == "max_pool2d":
        return k.max_pool2d(dims, c.params, x)
    if c.kind == "reshape":  # no kernel: the output is the input's buffer
        return np.asarray(x, dtype=np.int8).reshape(c.out_shape)
    if c.kind == "add":
        return k.add(c.params, x, c.xs[1])
    if c.kind == "concat":
        return k.concat(c.params, c.xs)
    if c.kind == "pad":
        return k.pad(dims, c.params, x)
    if c.kind == "global_avg_pool":
        return k.global_avg_pool(c.params, x.reshape(x.shape[0], -1))
    return getattr(k, c.kind)(c.params, x)
