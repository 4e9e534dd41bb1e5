"""TFLite frontend: a ``.tflite`` flatbuffer (float32, or full-integer int8) -> an IR graph, no TensorFlow.

The file is parsed with the flatbuffer bindings shipped in ``ai_edge_litert`` (object API). TFLite
tensors are NHWC with a batch axis of 1; the IR is per sample and channels first, so the graph input
``(1, H, W, C)`` becomes ``(C, H, W)`` and weights move to PyTorch layouts. Fused activations become
separate :class:`~mcutrain.core.ops.Activation` nodes. Integer subgraphs that only compute a reshape target
are dropped.

Full-integer int8 models keep their quantization: every int8 tensor's scale and zero point, the int8
weights (per-channel scales, now along the IR's output-channel axis 0) and the int32 biases go into the
graph's ``quant`` and ``qvalues`` (:class:`~mcutrain.core.quant.Quant`); ``params`` holds the dequantized
values. QUANTIZE at the input and DEQUANTIZE at the output are the model's boundary: the graph's input and
output carry real values, quantized and dequantized exactly as those ops do. uint8 (legacy) and int16
activations are refused with a message that names the tensor.

The conversion rules per operator live in :mod:`mcutrain.frontends.tflite_rule_table`; the supported
subset and the error cases are documented in ``docs/frontends-tflite.md``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.schema_py_generated import BuiltinOperator as BO
from ai_edge_litert.schema_py_generated import TensorType as TT

from mcutrain.core import ir
from mcutrain.core.quant import Quant, dequantize, round_half_away
from mcutrain.frontends import FrontendError
from mcutrain.frontends.tflite_file import (
    NP_TYPES,
    OP_NAMES,
    TYPE_NAMES,
    check_types,
    decode,
    indices,
    layer_name,
    parse_model,
    read_file,
    short,
    single_subgraph,
    tensor_quant,
)
from mcutrain.frontends.tflite_rule_table import RULES, SHAPE_OPERANDS, nearest_alternative
from mcutrain.frontends.tflite_rules import FUSED, OpView, Value, ir_shape

__all__ = ["load_tflite"]
HWC = tuple[int, int, int]


def load_tflite(path: str | Path) -> ir.Graph:
    """Import a float32 or int8, single-subgraph, single-input ``.tflite`` model as an IR graph."""
    p = Path(path)
    data = read_file(p)
    model = parse_model(data, p)
    sg = single_subgraph(model, p)
    check_types(sg, p)
    return Converter(model, sg, data, p.stem).convert()


# ---------------------------------------------------------------------------------------------------
# Conversion context
# ---------------------------------------------------------------------------------------------------


class Converter:
    """State of one conversion: TFLite tensor index -> :class:`Value`, folded constants, the builder."""

    def __init__(self, model: tfl.ModelT, sg: tfl.SubGraphT, data: bytes, name: str) -> None:
        self.model, self.sg, self.data = model, sg, data
        self.tensors: list[tfl.TensorT] = list(sg.tensors or [])
        self.builder = ir.GraphBuilder(name)
        self.values: dict[int, Value] = {}
        self.folded: dict[int, np.ndarray] = {}
        self.ir_shapes: dict[str, ir.Shape] = {}
        self.quant: dict[str, Quant] = {}  # IR tensors and parameters of an int8 model
        self.qvalues: dict[str, np.ndarray] = {}
        self._pending: dict[str, tuple[Quant, np.ndarray | None]] = {}  # read by weight()/bias(), for emit()

    # -- driver -------------------------------------------------------------------------------------

    def convert(self) -> ir.Graph:
        self._add_input(int(self.sg.inputs[0]))
        views = [self._view(i, op) for i, op in enumerate(self.sg.operators or [])]
        dropped = self._shape_only_ops(views)
        for v in views:
            if v.index in dropped:
                continue
            rule = RULES.get(v.code)
            if rule is None:
                hint = nearest_alternative(v.code, OP_NAMES)
                raise self.fail(v, f"{v.kind} is not supported by the TFLite frontend; {hint}")
            rule(self, v)
        outputs = [self._output(int(t)) for t in self.sg.outputs]
        try:
            return self.builder.build(outputs, self.quant, self.qvalues)
        except ir.IRError as e:
            raise FrontendError(
                f"internal error: the converted graph is invalid ({e}); please report it with the model"
            ) from e

    def _view(self, index: int, op: tfl.OperatorT) -> OpView:
        oc = self.model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        kind = OP_NAMES.get(code, f"op code {code}")
        if code == BO.CUSTOM:
            kind = f"CUSTOM ({decode(oc.customCode)})"
        return OpView(index, code, kind, indices(op.inputs), indices(op.outputs), op.builtinOptions)

    def _shape_only_ops(self, views: list[OpView]) -> set[int]:
        """Integer ops whose results only reach shape operands (e.g. SHAPE -> STRIDED_SLICE -> PACK ->
        RESHAPE's shape): the rules use static output shapes, so these ops are dropped."""
        uses: dict[int, list[tuple[int, int]]] = {}
        for v in views:
            for pos, t in enumerate(v.inputs):
                uses.setdefault(t, []).append((v.index, pos))
        graph_outputs = {int(t) for t in self.sg.outputs}
        dropped: set[int] = set()
        for v in reversed(views):
            if not v.outputs or any(self.tensors[t].type not in (TT.INT32, TT.INT64) for t in v.outputs):
                continue
            reads = [u for t in v.outputs for u in uses.get(t, [])]
            if graph_outputs.intersection(v.outputs) or not reads:
                continue
            if all(j in dropped or SHAPE_OPERANDS.get(views[j].code) == pos for j, pos in reads):
                dropped.add(v.index)
        return dropped

    def _add_input(self, t: int) -> None:
        tensor = self.tensors[t]
        name = decode(tensor.name)
        if tensor.type not in (TT.FLOAT32, TT.INT8):
            raise FrontendError(
                f"input {name!r} is {TYPE_NAMES.get(tensor.type)}; only float32 and int8 inputs are supported"
            )
        shape = self._per_sample(t, f"input {name!r}")
        ir_name = self.builder.input(layer_name(name) or "input", ir_shape(shape))
        self.ir_shapes[ir_name] = ir_shape(shape)
        self.values[t] = Value(ir_name, shape)
        q = tensor_quant(tensor)
        if q is not None:
            self.quant[ir_name] = q

    def _output(self, t: int) -> str:
        name = decode(self.tensors[t].name)
        v = self.values.get(t)
        if v is None:
            raise FrontendError(f"graph output {name!r} is not computed by a supported op (a constant?)")
        if v.flat_hwc is not None:
            raise FrontendError(
                f"graph output {name!r} is a flattened NHWC tensor; its element order "
                "differs in the channels-first IR. End the model with a FULLY_CONNECTED "
                "layer or output the 4-D tensor"
            )
        return v.name

    def _per_sample(self, t: int, what: str) -> ir.Shape:
        """Static shape of an activation tensor without its batch axis of 1: (H, W, C) or (F,)."""
        tensor = self.tensors[t]
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
        sig = tensor.shapeSignature
        if sig is not None and len(sig) and any(int(d) < 0 for d in list(sig)[1:]):
            raise FrontendError(
                f"{what} has a dynamic shape {[int(d) for d in sig]}; export with static H, W and C"
            )
        if len(shape) not in (2, 4) or shape[0] != 1 or any(d <= 0 for d in shape):
            raise FrontendError(
                f"{what} has shape {list(shape)}; only [1, H, W, C] images and [1, F] "
                "vectors are supported (batch 1)"
            )
        return shape[1:]

    # -- helpers for the rules ----------------------------------------------------------------------

    def fail(self, op: OpView, msg: str) -> FrontendError:
        out = decode(self.tensors[op.outputs[0]].name) if op.outputs else "?"
        return FrontendError(f"TFLite operator #{op.index} {op.kind} (output tensor {short(out)!r}): {msg}")

    def tensor(self, t: int) -> tfl.TensorT:
        return self.tensors[t]

    def hint(self, op: OpView, weight_pos: int | None = None) -> str:
        """Node name base: the layer of the output tensor, else of the weights, else the op kind."""
        names = [self.tensors[op.outputs[0]].name] if op.outputs else []
        if weight_pos is not None and weight_pos < len(op.inputs) and op.inputs[weight_pos] >= 0:
            names.append(self.tensors[op.inputs[weight_pos]].name)
        for n in names:
            base = layer_name(decode(n))
            if base:
                return base
        return op.kind.lower()

    def value(self, op: OpView, pos: int, allow_flat: bool = False) -> Value:
        t = op.inputs[pos] if pos < len(op.inputs) else -1
        v = self.values.get(t)
        if v is None:
            what = "missing" if t < 0 else f"{short(decode(self.tensors[t].name))!r}, which is a constant"
            raise self.fail(op, f"input {pos} is {what}; expected an activation tensor")
        if v.flat_hwc is not None and not allow_flat:
            raise self.fail(
                op,
                f"reads a flattened NHWC tensor {v.flat_hwc}: the IR flattens in CHW order, "
                "so only FULLY_CONNECTED (whose weights are permuted) may consume a flatten "
                "with H*W > 1",
            )
        return v

    def spatial(self, op: OpView, pos: int) -> Value:
        v = self.value(op, pos)
        if not v.spatial:
            raise self.fail(op, f"expects a 4-D NHWC input, got a tensor of shape {[1, *v.shape]}")
        return v

    def out_shape(self, op: OpView) -> ir.Shape:
        return self._per_sample(op.outputs[0], f"output of operator #{op.index} {op.kind}")

    def is_const(self, op: OpView, pos: int) -> bool:
        t = op.inputs[pos] if pos < len(op.inputs) else -1
        return t >= 0 and (t in self.folded or self._buffer(t) is not None)

    def raw_const(self, t: int) -> np.ndarray:
        if t in self.folded:
            return self.folded[t]
        tensor, raw = self.tensors[t], self._buffer(t)
        dtype = NP_TYPES.get(tensor.type)
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else []))
        if raw is None or dtype is None or len(raw) != np.dtype(dtype).itemsize * int(np.prod(shape)):
            raise FrontendError(
                f"constant {short(decode(tensor.name))!r} ({TYPE_NAMES.get(tensor.type)}, "
                f"shape {list(shape)}) is missing, of an unsupported type or corrupt"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def weight(self, op: OpView, pos: int, what: str) -> np.ndarray:
        """A float32 constant, or the dequantized values of an int8 one (whose quantization the next
        :meth:`emit` attaches to its node's weight)."""
        if not self.is_const(op, pos):
            raise self.fail(op, f"the {what} (input {pos}) must be a constant tensor")
        t = op.inputs[pos]
        tensor = self.tensors[t]
        if t not in self.folded and tensor.type == TT.INT8:
            q = tensor_quant(tensor)
            assert q is not None
            self._pending["weight"] = (replace(q, axis=0), None)
            return dequantize(self.raw_const(t), q)
        if t not in self.folded and tensor.type != TT.FLOAT32:
            raise self.fail(op, f"the {what} is {TYPE_NAMES.get(tensor.type)}; expected float32 or int8")
        return np.array(self.raw_const(t), dtype=np.float32)

    def bias(self, op: OpView, pos: int, n: int) -> np.ndarray:
        if pos >= len(op.inputs) or op.inputs[pos] < 0:
            if "weight" in self._pending:  # an int8 layer without bias: zeros of the bias's scale
                wq = self._pending["weight"][0]
                xq = self.quant.get(self.values[op.inputs[0]].name) if op.inputs[0] in self.values else None
                if xq is not None:
                    scales = tuple(float(np.float32(xq.scale[0]) * np.float32(s)) for s in _per(wq.scale, n))
                    self._pending["bias"] = (Quant(scales, (0,) * n, "int32"), np.zeros(n, np.int32))
            return np.zeros(n, np.float32)
        tensor = self.tensors[op.inputs[pos]]
        if tensor.type == TT.INT32:
            q = tensor_quant(tensor, axis=0)
            if q is None:
                raise self.fail(op, "the int32 bias has no quantization parameters")
            ints = np.array(self.raw_const(op.inputs[pos]), dtype=np.int32).ravel()
            q = replace(q, scale=_per(q.scale, n), zero_point=_per(q.zero_point, n))
            self._pending["bias"] = (q, ints)
            b = dequantize(ints, q)
        else:
            b = self.weight(op, pos, "bias").ravel()
        if b.size != n:
            raise self.fail(op, f"bias has {b.size} elements, expected {n}")
        return b

    def ints(self, op: OpView, pos: int, what: str) -> np.ndarray:
        if not self.is_const(op, pos) or self.tensors[op.inputs[pos]].type not in (TT.INT32, TT.INT64):
            raise self.fail(op, f"the {what} (input {pos}) must be a constant int32 tensor")
        return np.array(self.raw_const(op.inputs[pos]), dtype=np.int64)

    def fold(self, t: int, array: np.ndarray) -> None:
        self.folded[t] = array

    def emit(self, hint: str, op: ir.Op, inputs: list[Value], **params: np.ndarray) -> Value:
        """Add an IR node; returns its output as a Value (TFLite layout derived from the IR shape)."""
        try:
            out = op.out_shape([self.ir_shapes[v.name] for v in inputs])
        except ir.IRError as e:
            raise FrontendError(f"cannot convert node {hint!r}: {e}") from e
        name = self.builder.add(hint, op, [v.name for v in inputs], **params)
        self.ir_shapes[name] = tuple(out)
        if params:
            self._quantize_params(name, params)
        elif isinstance(op, ir.Reshape) and inputs[0].name in self.quant:  # a reshape keeps the integers
            self.quant[name] = self.quant[inputs[0].name]
        return Value(name, (out[1], out[2], out[0]) if len(out) == 3 else tuple(out))

    def _quantize_params(self, node: str, params: dict[str, np.ndarray]) -> None:
        """Attach the pending int8 weight / int32 bias quantization to ``node``'s parameters; the integer
        weights are recovered exactly from the (permuted) dequantized ones."""
        pending, self._pending = self._pending, {}
        for pname, (q, ints) in pending.items():
            key, real = f"{node}.{pname}", params[pname]
            if ints is None:
                ints = np.clip(round_half_away(real / q.scales(real.ndim)), -127, 127).astype(np.int8)
                if not np.array_equal(dequantize(ints, q), real.astype(np.float32)):
                    raise FrontendError(f"internal error: the int8 {pname} of {node!r} does not round-trip")
            self.quant[key], self.qvalues[key] = q, ints.reshape(real.shape)

    def finish(self, op: OpView, y: Value, act: int = 0, flat_hwc: HWC | None = None) -> None:
        """Apply a fused activation and bind the op's output tensor to ``y``. In an int8 model the op's
        result before the activation has the output's quantization too (TFLite clamps in it)."""
        q = tensor_quant(self.tensors[op.outputs[0]])
        if q is not None:
            self.quant[y.name] = q
        if act:
            fn = FUSED.get(act)
            if fn is None:
                raise self.fail(
                    op,
                    f"fused activation {act} (RELU_N1_TO_1 / SIGN_BIT) is not supported; "
                    "use RELU, RELU6 or TANH",
                )
            y = self.emit(f"{y.name}_{fn.value}", ir.Activation(fn), [y])
        self.alias(op, Value(y.name, y.shape, flat_hwc))

    def alias(self, op: OpView, v: Value) -> None:
        t = op.outputs[0]
        if self.tensors[t].type not in (TT.FLOAT32, TT.INT8):
            raise self.fail(
                op,
                f"produces a {TYPE_NAMES.get(self.tensors[t].type)} tensor; only float32 "
                "and int8 activations are supported",
            )
        q = tensor_quant(self.tensors[t])
        if q is not None:
            have = self.quant.get(v.name)
            if have is not None and have != q:
                raise self.fail(
                    op, f"changes the quantization of its input ({have} -> {q}), which is not supported"
                )
            self.quant[v.name] = q
        expected = self.out_shape(op)
        if v.shape != expected:
            raise self.fail(
                op,
                f"converted output has shape {v.shape}, TFLite says {expected} (NHWC, "
                "without batch); unsupported geometry",
            )
        self.values[t] = v

    def flatten(self, op: OpView, x: Value) -> Value:
        """IR reshape of an (H, W, C) tensor to a vector, tagged when its order differs from TFLite's."""
        h, w, c = x.shape
        y = self.emit(self.hint(op), ir.Reshape((h * w * c,)), [x])
        return Value(y.name, y.shape, (h, w, c) if h * w > 1 else None)

    def _buffer(self, t: int) -> bytes | None:
        buf = self.model.buffers[self.tensors[t].buffer] if self.model.buffers else None
        if buf is None:
            return None
        if buf.data is not None and len(buf.data):
            return np.asarray(buf.data, dtype=np.uint8).tobytes()
        if buf.offset > 1 and buf.size:  # large models keep buffers after the flatbuffer
            if buf.offset + buf.size > len(self.data):
                raise FrontendError("the model is truncated: a weight buffer lies past the end of the file")
            return self.data[buf.offset : buf.offset + buf.size]
        return None


def _per(values: tuple, n: int) -> tuple:
    """Per-channel values: as they are, or one value repeated for ``n`` channels."""
    return tuple(values) if len(values) == n else tuple(values) * n if len(values) == 1 else tuple(values)
