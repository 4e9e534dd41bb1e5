"""The constant data of an int8 node's kernel call, as C arrays and a params struct in flash.

One place says what an int8 forward reads besides its input: int8 weights and int32 biases (conv2d,
linear), the params struct of :mod:`mcutrain.core.int8_params` with its per-channel arrays, lookup tables
(logistic, a requantizing concat) and plain integers (a clamp's range, the pad value). The code generator
renders these records (:mod:`mcutrain.emit.model_c`) and the memory report counts their bytes
(:mod:`mcutrain.train.memory`), so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcutrain.core import ir
from mcutrain.core.int8_params import Q8Params, QuantizeQ8, quantize_q8
from mcutrain.core.layout import c_ident
from mcutrain.core.op_table import entry

#: C element type -> NumPy dtype of a const array.
C_DTYPES = {"int8_t": np.int8, "int32_t": np.int32, "uint64_t": np.uint64, "float": np.float32}


@dataclass(frozen=True)
class ConstArray:
    """A const C array in flash."""

    name: str
    ctype: str  # int8_t, int32_t, uint64_t, float
    values: np.ndarray
    doc: str

    @property
    def nbytes(self) -> int:
        return int(self.values.size * np.dtype(C_DTYPES[self.ctype]).itemsize)


@dataclass(frozen=True)
class ConstStruct:
    """A const params struct: ``static const <ctype> <name> = {.field = value, ...}`` (array fields name
    their :class:`ConstArray`)."""

    name: str
    ctype: str
    fields: tuple[tuple[str, str | int | float], ...]  # (field, an array's name, an int or a float)


@dataclass(frozen=True)
class Int8Data:
    """What one int8 kernel call reads from flash, and its non-buffer arguments by parameter name
    (``q``, ``w``, ``b``, ``lo``, ``hi``, ``value``, ``lut``; a concat's tables as ``luts``)."""

    arrays: tuple[ConstArray, ...] = ()
    struct: ConstStruct | None = None
    args: dict[str, str | int] = field(default_factory=dict)
    luts: tuple[str | None, ...] = ()  # concat: per input, its requantization table (None: a copy)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (a params struct's few words are code-sized constants, not counted, as the
        dims structs are not)."""
        return sum(a.nbytes for a in self.arrays)


def params_struct(p: Q8Params, name: str, doc: str) -> tuple[ConstStruct, list[ConstArray]]:
    """The const struct of ``p`` named ``name``; each array field becomes the array ``<name>_<field>``."""
    inits: list[tuple[str, str | int | float]] = []
    arrays: list[ConstArray] = []
    for (fname, value), (_, ctype) in zip(p.c_fields(), p.c_types(), strict=True):
        if ctype.endswith("*"):
            elem = ctype.removeprefix("const ").removesuffix("*").strip()
            arr = ConstArray(f"{name}_{fname}", elem, np.asarray(value, C_DTYPES[elem]), f"{doc}: {fname}")
            arrays.append(arr)
            inits.append((fname, arr.name))
        elif ctype == "float":
            inits.append((fname, float(value)))  # type: ignore[arg-type]
        else:
            inits.append((fname, int(value)))  # type: ignore[call-overload]
    return ConstStruct(name, p.ctype, tuple(inits)), arrays


def int8_data(graph: ir.Graph, node: ir.Node) -> Int8Data:
    """The flash data and arguments of ``node``'s int8 forward (op table :class:`~mcutrain.core.op_spec.
    Int8Spec`)."""
    spec = entry(node.op).int8
    if spec is None:
        raise ValueError(f"{node.name}: op {node.op.kind!r} has no int8 kernel")
    p = spec.params(graph, node)
    base = c_ident(node.name)
    if p is None:  # a view (reshape)
        return Int8Data()
    if isinstance(p, Q8Params):
        struct, arrays = params_struct(p, f"{base}_q8", f"{node.name} int8 params")
        args: dict[str, str | int] = {"q": f"&{struct.name}"}
        if isinstance(node.op, (ir.Conv2d, ir.Linear)):
            w = graph.qvalues[node.param_key("weight")]
            arrays.insert(0, ConstArray(f"{base}_w_s8", "int8_t", w.reshape(w.shape[0], -1), _wdoc(node, w)))
            args.update(w=arrays[0].name, co_begin=0, co_end=int(w.shape[0]))
            bias = graph.qvalues.get(node.param_key("bias"))
            if bias is not None:
                arrays.insert(1, ConstArray(f"{base}_b_s32", "int32_t", bias, f"{node.name} bias (int32)"))
            args["b"] = arrays[1].name if bias is not None else "0"
        return Int8Data(tuple(arrays), struct, args)
    if isinstance(p, tuple) and len(p) == 2:  # a clamp's range
        return Int8Data(args={"lo": int(p[0]), "hi": int(p[1])})
    if isinstance(p, int):  # the pad value
        return Int8Data(args={"value": p})
    if isinstance(node.op, ir.Concat):
        luts = [
            None if t is None else ConstArray(f"{base}_lut{j}", "int8_t", np.asarray(t), _lutdoc(node, j))
            for j, t in enumerate(p)
        ]
        return Int8Data(tuple(a for a in luts if a), luts=tuple(a.name if a else None for a in luts))
    table = ConstArray(f"{base}_lut", "int8_t", np.asarray(p), f"{node.name} lookup table t[q + 128]")
    return Int8Data((table,), args={"lut": table.name})


def conversion_data(graph: ir.Graph, tensor: str) -> tuple[ConstStruct, QuantizeQ8]:
    """The params struct of a QUANTIZE or DEQUANTIZE of ``tensor`` (its scale and zero point)."""
    q = quantize_q8(graph.quant[tensor])
    struct, _ = params_struct(q, f"{c_ident(tensor)}_cvt_q8", "")
    return struct, q


def _wdoc(node: ir.Node, w: np.ndarray) -> str:
    return f"{node.name} weight (int8) [{w.shape[0]}, {w[0].size}]"


def _lutdoc(node: ir.Node, j: int) -> str:
    return f"{node.name} input {j} requantization table t[q + 128]"
