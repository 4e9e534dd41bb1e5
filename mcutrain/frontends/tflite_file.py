"""Reading and validating a ``.tflite`` flatbuffer for the TFLite frontend: the file, its single subgraph,
its tensor types and quantization, and the names of its tensors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.schema_py_generated import BuiltinOperator as BO
from ai_edge_litert.schema_py_generated import TensorType as TT

from mcutrain.core.quant import Quant
from mcutrain.frontends import FrontendError

OP_NAMES: dict[int, str] = {v: k for k, v in vars(BO).items() if not k.startswith("_")}
TYPE_NAMES: dict[int, str] = {v: k for k, v in vars(TT).items() if not k.startswith("_")}
#: Integer tensor types that are not supported, and why.
UNSUPPORTED_TYPES = {
    TT.UINT8: "uint8 (legacy asymmetric quantization); convert the model to full-integer int8",
    TT.INT16: "int16 (16x8 quantization); convert the model to full-integer int8",
    TT.INT4: "int4; convert the model to int8",
    TT.UINT4: "uint4; convert the model to int8",
    TT.INT2: "int2; convert the model to int8",
}
NP_TYPES = {TT.FLOAT32: "<f4", TT.FLOAT16: "<f2", TT.INT32: "<i4", TT.INT64: "<i8", TT.INT8: "i1"}
_OPAQUE = re.compile(r"^(Identity|StatefulPartitionedCall|PartitionedCall)(_\d+)?$")


# ---------------------------------------------------------------------------------------------------
# Reading and validating the flatbuffer
# ---------------------------------------------------------------------------------------------------


def read_file(p: Path) -> bytes:
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
        refs = [*indices(sg.inputs), *indices(sg.outputs)]
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < n_codes:
                raise ValueError(f"operator code index {op.opcodeIndex} out of range")
            refs += [*indices(op.inputs), *indices(op.outputs)]
        if any(not -1 <= i < n_t for i in refs):
            raise ValueError("tensor index out of range")


def indices(seq: Iterable[Any] | None) -> tuple[int, ...]:
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
    n_in = len(indices(sg.inputs))
    if n_in != 1:
        raise FrontendError(f"{str(p)!r} has {n_in} inputs; mcutrain imports single-input models only")
    if not indices(sg.outputs):
        raise FrontendError(f"{str(p)!r} declares no outputs")
    return sg


def check_types(sg: tfl.SubGraphT, p: Path) -> None:
    for t in sg.tensors or []:
        why = UNSUPPORTED_TYPES.get(t.type)
        if why is not None:
            raise FrontendError(f"{str(p)!r}: tensor {short(decode(t.name))!r} is {why}")
        if t.type == TT.INT8 and tensor_quant(t) is None:
            raise FrontendError(
                f"{str(p)!r}: int8 tensor {short(decode(t.name))!r} has no quantization parameters"
            )


def tensor_quant(t: tfl.TensorT, axis: int | None = None) -> Quant | None:
    """The quantization of an int8 or int32 tensor (None for float ones); per-channel quantization is
    moved to ``axis`` when given (the IR keeps channels along the weight's axis 0)."""
    q = t.quantization
    if t.type not in (TT.INT8, TT.INT32) or q is None or q.scale is None or not len(q.scale):
        return None
    scale = tuple(float(v) for v in np.asarray(q.scale, np.float32))
    zp = tuple(int(v) for v in np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale)))
    if len(zp) == 1 and len(scale) > 1:
        zp = zp * len(scale)
    dtype = "int8" if t.type == TT.INT8 else "int32"
    return Quant(scale, zp, dtype, int(q.quantizedDimension) if axis is None else axis)


def decode(name: bytes | str | None) -> str:
    if name is None:
        return ""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def short(name: str, n: int = 80) -> str:
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
