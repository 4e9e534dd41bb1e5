"""Single-op ``.tflite`` models built in memory (flatbuffer object API), and running them in LiteRT.

The int8 kernel tests build a model of one operator with the exact quantization parameters of a case,
run it with LiteRT's reference kernels (``OpResolverType.BUILTIN_REF``) and compare our numpy semantics
and our C kernels with its output. Tensors are NHWC with a batch axis, as TFLite stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType

_TYPES = {
    "int8": tfl.TensorType.INT8,
    "uint8": tfl.TensorType.UINT8,
    "int32": tfl.TensorType.INT32,
    "float32": tfl.TensorType.FLOAT32,
}
#: TFLite's fused activation codes.
ACT = {"none": tfl.ActivationFunctionType.NONE, "relu": tfl.ActivationFunctionType.RELU,
       "relu6": tfl.ActivationFunctionType.RELU6}  # fmt: skip
PADDING = {"same": tfl.Padding.SAME, "valid": tfl.Padding.VALID}


@dataclass
class Tensor:
    """One tensor of the model: shape, type, quantization, and constant data (None: an activation)."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: Sequence[float] | None = None
    zero_point: Sequence[int] | None = None
    axis: int = 0
    data: np.ndarray | None = None
    name: str = ""


@dataclass
class Op:
    """An operator: its builtin code, tensors (indices into the model's tensor list), options."""

    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = tfl.BuiltinOptions.NONE
    options: object | None = None
    version: int = 1


@dataclass
class Model:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add(self, t: Tensor) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def to_bytes(self) -> bytes:
        m = tfl.ModelT()
        m.version = 3
        m.description = b"mcutrain test model"
        m.buffers = [tfl.BufferT()]
        codes: list[tuple[int, int]] = []
        sg = tfl.SubGraphT()
        sg.name = b"main"
        sg.tensors = []
        for i, t in enumerate(self.tensors):
            tt = tfl.TensorT()
            tt.shape = list(t.shape)
            tt.type = _TYPES[t.dtype]
            tt.name = (t.name or f"t{i}").encode()
            tt.buffer = 0
            if t.data is not None:
                b = tfl.BufferT()
                raw = np.ascontiguousarray(np.asarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<")))
                b.data = np.frombuffer(raw.tobytes(), dtype=np.uint8)
                m.buffers.append(b)
                tt.buffer = len(m.buffers) - 1
            if t.scale is not None:
                q = tfl.QuantizationParametersT()
                q.scale = [float(s) for s in t.scale]
                q.zeroPoint = [int(z) for z in t.zero_point]
                q.quantizedDimension = t.axis
                tt.quantization = q
            sg.tensors.append(tt)
        sg.operators = []
        for op in self.ops:
            if (op.code, op.version) not in codes:
                codes.append((op.code, op.version))
            o = tfl.OperatorT()
            o.opcodeIndex = codes.index((op.code, op.version))
            o.inputs, o.outputs = list(op.inputs), list(op.outputs)
            o.builtinOptionsType = op.options_type
            o.builtinOptions = op.options
            sg.operators.append(o)
        sg.inputs, sg.outputs = list(self.inputs), list(self.outputs)
        m.subgraphs = [sg]
        m.operatorCodes = []
        for code, version in codes:
            oc = tfl.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            m.operatorCodes.append(oc)
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def single_op(
    code: int,
    inputs: Sequence[Tensor],
    output: Tensor,
    options_type: int = tfl.BuiltinOptions.NONE,
    options: object | None = None,
    version: int = 1,
) -> bytes:
    """A model of one operator; its non-constant inputs are the model's inputs, in order."""
    m = Model()
    ins = [m.add(t) for t in inputs]
    out = m.add(output)
    m.ops.append(Op(code, ins, [out], options_type, options, version))
    m.inputs = [i for i, t in zip(ins, inputs, strict=True) if t.data is None]
    m.outputs = [out]
    return m.to_bytes()


def interpreter(model: bytes, preserve_all: bool = False) -> Interpreter:
    """LiteRT with its reference kernels (the ones our integer semantics reproduce)."""
    it = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=preserve_all,
    )
    it.allocate_tensors()
    return it


def run(model: bytes, *inputs: np.ndarray) -> np.ndarray:
    """Run a single-output model on its inputs (in the order of the model's inputs)."""
    it = interpreter(model)
    for d, x in zip(it.get_input_details(), inputs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


# ---- options ----------------------------------------------------------------------------------------


def conv2d_options(stride: tuple[int, int], dilation: tuple[int, int], padding: str, act: str):  # type: ignore[no-untyped-def]
    o = tfl.Conv2DOptionsT()
    o.padding = PADDING[padding]
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dilation
    o.fusedActivationFunction = ACT[act]
    return o


def depthwise_options(  # type: ignore[no-untyped-def]
    stride: tuple[int, int], dilation: tuple[int, int], padding: str, act: str, multiplier: int
):
    o = tfl.DepthwiseConv2DOptionsT()
    o.padding = PADDING[padding]
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dilation
    o.fusedActivationFunction = ACT[act]
    o.depthMultiplier = multiplier
    return o


def pool_options(kernel: tuple[int, int], stride: tuple[int, int], padding: str, act: str):  # type: ignore[no-untyped-def]
    o = tfl.Pool2DOptionsT()
    o.padding = PADDING[padding]
    o.strideH, o.strideW = stride
    o.filterHeight, o.filterWidth = kernel
    o.fusedActivationFunction = ACT[act]
    return o


def fc_options(act: str, keep_num_dims: bool = False):  # type: ignore[no-untyped-def]
    o = tfl.FullyConnectedOptionsT()
    o.fusedActivationFunction = ACT[act]
    o.keepNumDims = keep_num_dims
    return o


def add_options(act: str):  # type: ignore[no-untyped-def]
    o = tfl.AddOptionsT()
    o.fusedActivationFunction = ACT[act]
    return o
