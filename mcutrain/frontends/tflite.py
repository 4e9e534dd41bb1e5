"""TFLite frontend: a float32 ``.tflite`` flatbuffer -> :class:`mcutrain.core.graph.Graph`, no TensorFlow.

The file is parsed with the flatbuffer bindings shipped in ``ai_edge_litert`` (object API). TFLite
tensors are NHWC with a batch axis of 1; the IR is per sample and channels first, so the graph input
``(1, H, W, C)`` becomes ``(C, H, W)`` and weights move to PyTorch layouts. Fused activations become
separate :class:`~mcutrain.core.ops.Activation` nodes. Integer subgraphs that only compute a reshape target
are dropped. The conversion rules per operator live in :mod:`mcutrain.frontends.tflite_rule_table`; the
supported subset and the error cases are documented in ``docs/frontends-tflite.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.schema_py_generated import BuiltinOperator as BO
from ai_edge_litert.schema_py_generated import TensorType as TT

from mcutrain.core import ir
from mcutrain.frontends import FrontendError
from mcutrain.frontends.tflite_rule_table import RULES, SHAPE_OPERANDS, nearest_alternative
from mcutrain.frontends.tflite_rules import FUSED, OpView, Value, ir_shape

__all__ = ["load_tflite"]

OP_NAMES: dict[int, str] = {v: k for k, v in vars(BO).items() if not k.startswith("_")}
TYPE_NAMES: dict[int, str] = {v: k for k, v in vars(TT).items() if not k.startswith("_")}
QUANTIZED_TYPES = {TT.INT8, TT.UINT8, TT.INT16, TT.INT4, TT.UINT4, TT.INT2}
NP_TYPES = {TT.FLOAT32: "<f4", TT.FLOAT16: "<f2", TT.INT32: "<i4", TT.INT64: "<i8"}
HWC = tuple[int, int, int]
_OPAQUE = re.compile(r"^(Identity|StatefulPartitionedCall|PartitionedCall)(_\d+)?$")


def load_tflite(path: str | Path) -> ir.Graph:
    """Import a float32 single-subgraph, single-input ``.tflite`` model as an IR graph."""
    p = Path(path)
    data = _read(p)
    model = parse_model(data, p)
    sg = single_subgraph(model, p)
    _check_types(sg, p)
    return Converter(model, sg, data, p.stem).convert()


# ---------------------------------------------------------------------------------------------------
# Reading and validating the flatbuffer
# ---------------------------------------------------------------------------------------------------


def _read(p: Path) -> bytes:
    if not p.is_file():
        raise FrontendError(f"TFLite model {str(p)!r} does not exist (or is not a file)")
    try:
        return p.read_bytes()
    except OSError as e:
        raise FrontendError(f"cannot read TFLite model {str(p)!r}: {e}") from e


def parse_model(data: bytes, p: Path) -> tfl.ModelT:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FrontendError(
            f"{str(p)!r} is not a TFLite flatbuffer (no 'TFL3' file identifier); "
            "pass a .tflite file written by the TFLite/LiteRT converter"
        )
    try:
        model = tfl.ModelT.InitFromPackedBuf(data, 0)
        _check_indices(model)
    except FrontendError:
        raise
    except Exception as e:
        raise FrontendError(
            f"{str(p)!r} is truncated or corrupt: its TFLite flatbuffer cannot be parsed "
            f"({type(e).__name__}: {e})"
        ) from e
    return model


def _check_indices(model: tfl.ModelT) -> None:
    """Reject dangling indices up front so that the conversion never indexes out of range."""
    n_buf, n_codes = len(model.buffers or []), len(model.operatorCodes or [])
    for sg in model.subgraphs or []:
        n_t = len(sg.tensors or [])
        for t in sg.tensors or []:
            if not 0 <= t.buffer < max(n_buf, 1):
                raise ValueError(f"tensor buffer index {t.buffer} out of range")
        refs = [*_indices(sg.inputs), *_indices(sg.outputs)]
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < n_codes:
                raise ValueError(f"operator code index {op.opcodeIndex} out of range")
            refs += [*_indices(op.inputs), *_indices(op.outputs)]
        if any(not -1 <= i < n_t for i in refs):
            raise ValueError("tensor index out of range")


def _indices(seq: Iterable[Any] | None) -> tuple[int, ...]:
    """A flatbuffer index vector (None, list or numpy array) as a tuple of ints."""
    return tuple(int(i) for i in seq) if seq is not None else ()


def single_subgraph(model: tfl.ModelT, p: Path) -> tfl.SubGraphT:
    n = len(model.subgraphs or [])
    if n != 1:
        raise FrontendError(
            f"{str(p)!r} has {n} subgraphs; mcutrain imports single-subgraph models only "
            "(no control flow such as WHILE/IF, one signature)"
        )
    sg = model.subgraphs[0]
    n_in = len(_indices(sg.inputs))
    if n_in != 1:
        raise FrontendError(f"{str(p)!r} has {n_in} inputs; mcutrain imports single-input models only")
    if not _indices(sg.outputs):
        raise FrontendError(f"{str(p)!r} declares no outputs")
    return sg


def _check_types(sg: tfl.SubGraphT, p: Path) -> None:
    for t in sg.tensors or []:
        if t.type in QUANTIZED_TYPES:
            raise FrontendError(
                f"{str(p)!r}: quantized models are not supported yet (tensor {_short(_decode(t.name))!r} is "
                f"{TYPE_NAMES.get(t.type, t.type)}); export a float32 .tflite (convert without "
                "optimizations or a representative dataset)"
            )


def _decode(name: bytes | str | None) -> str:
    if name is None:
        return ""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _short(name: str, n: int = 80) -> str:
    return name if len(name) <= n else name[: n - 3] + "..."


def layer_name(tensor_name: str) -> str | None:
    """A readable node name from a TF-style tensor name: ``'model/conv2d_1/Conv2D;...' -> 'conv2d_1'``.

    The converter joins fused tensor names with ``;``; the last part names the op's own layer. Returns
    None for opaque names (``Identity``, ``StatefulPartitionedCall:0``).
    """
    part = re.sub(r":\d+$", "", tensor_name.split(";")[-1].strip())
    part = part.removeprefix("serving_default_")
    comps = [c for c in part.split("/") if c]
    if not comps or _OPAQUE.match(comps[-1]):
        return None
    return comps[1] if len(comps) >= 3 else comps[0]


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
            return self.builder.build(outputs)
        except ir.IRError as e:
            raise FrontendError(
                f"internal error: the converted graph is invalid ({e}); please report it with the model"
            ) from e

    def _view(self, index: int, op: tfl.OperatorT) -> OpView:
        oc = self.model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        kind = OP_NAMES.get(code, f"op code {code}")
        if code == BO.CUSTOM:
            kind = f"CUSTOM ({_decode(oc.customCode)})"
        return OpView(index, code, kind, _indices(op.inputs), _indices(op.outputs), op.builtinOptions)

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
        name = _decode(tensor.name)
        if tensor.type != TT.FLOAT32:
            raise FrontendError(
                f"input {name!r} is {TYPE_NAMES.get(tensor.type)}; only float32 inputs are supported"
            )
        shape = self._per_sample(t, f"input {name!r}")
        ir_name = self.builder.input(layer_name(name) or "input", ir_shape(shape))
        self.ir_shapes[ir_name] = ir_shape(shape)
        self.values[t] = Value(ir_name, shape)

    def _output(self, t: int) -> str:
        name = _decode(self.tensors[t].name)
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
        out = _decode(self.tensors[op.outputs[0]].name) if op.outputs else "?"
        return FrontendError(f"TFLite operator #{op.index} {op.kind} (output tensor {_short(out)!r}): {msg}")

    def tensor(self, t: int) -> tfl.TensorT:
        return self.tensors[t]

    def hint(self, op: OpView, weight_pos: int | None = None) -> str:
        """Node name base: the layer of the output tensor, else of the weights, else the op kind."""
        names = [self.tensors[op.outputs[0]].name] if op.outputs else []
        if weight_pos is not None and weight_pos < len(op.inputs) and op.inputs[weight_pos] >= 0:
            names.append(self.tensors[op.inputs[weight_pos]].name)
        for n in names:
            base = layer_name(_decode(n))
            if base:
                return base
        return op.kind.lower()

    def value(self, op: OpView, pos: int, allow_flat: bool = False) -> Value:
        t = op.inputs[pos] if pos < len(op.inputs) else -1
        v = self.values.get(t)
        if v is None:
            what = "missing" if t < 0 else f"{_short(_decode(self.tensors[t].name))!r}, which is a constant"
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
                f"constant {_short(_decode(tensor.name))!r} ({TYPE_NAMES.get(tensor.type)}, "
                f"shape {list(shape)}) is missing, of an unsupported type or corrupt"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def weight(self, op: OpView, pos: int, what: str) -> np.ndarray:
        if not self.is_const(op, pos):
            raise self.fail(op, f"the {what} (input {pos}) must be a constant tensor")
        t = op.inputs[pos]
        if t not in self.folded and self.tensors[t].type != TT.FLOAT32:
            raise self.fail(op, f"the {what} is {TYPE_NAMES.get(self.tensors[t].type)}; expected float32")
        return np.array(self.raw_const(t), dtype=np.float32)

    def bias(self, op: OpView, pos: int, n: int) -> np.ndarray:
        if pos >= len(op.inputs) or op.inputs[pos] < 0:
            return np.zeros(n, np.float32)
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
        return Value(name, (out[1], out[2], out[0]) if len(out) == 3 else tuple(out))

    def finish(self, op: OpView, y: Value, act: int = 0, flat_hwc: HWC | None = None) -> None:
        """Apply a fused activation and bind the op's output tensor to ``y``."""
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
        if self.tensors[t].type != TT.FLOAT32:
            raise self.fail(
                op,
                f"produces a {TYPE_NAMES.get(self.tensors[t].type)} tensor; only float32 "
                "activations are supported",
            )
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
