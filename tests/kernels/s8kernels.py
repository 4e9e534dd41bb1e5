"""ctypes binding of the int8 kernels (firmware/runtime/include/mt_kernels_s8.h) for the tests.

The kernels live in the same host library as the float kernels (the ``kernels`` fixture compiles every
``firmware/runtime/src/*.c``). The params structs are derived from the dataclasses of
:mod:`mcutrain.core.int8_params` (their ``ctype`` and ``c_types()``); ``abi_probe`` compiles a probe
of the header's ``sizeof``/``offsetof`` to check them. The dims structs are ckernels' (the op table's).
"""

from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

from mcutrain.core import int8_params as P
from mcutrain.core.int8_scratch import conv2d_s8_scratch_bytes

from .ckernels import _POINTEES, HOST_FLAGS, INCLUDE, QSTRUCTS
from .ckernels import PROTOTYPES as ALL_PROTOTYPES

HEADER = INCLUDE / "mt_kernels_s8.h"
_NP = {"int32_t": np.int32, "uint64_t": np.uint64}
i32, i8p, i32p, f32p = C.c_int32, C.POINTER(C.c_int8), C.POINTER(C.c_int32), C.POINTER(C.c_float)

#: Prototype of every function of mt_kernels_s8.h (name -> (restype, argtypes)): the op table's int8
#: kernels and the quantize/dequantize step kernels, as ckernels derives them.
PROTOTYPES = {name: proto for name, proto in ALL_PROTOTYPES.items() if "_s8" in name}


def abi_probe(out_dir: Path) -> list[int]:
    """sizeof and the field offsets of every params struct, as the compiled header lays them out."""
    items = []
    for name, st in QSTRUCTS.items():
        items.append(f"sizeof({name})")
        items += [f"offsetof({name}, {f})" for f, _ in st._fields_]
    body = ",\n    ".join(f"(int32_t){e}" for e in items)
    src = out_dir / "s8_probe.c"
    src.write_text(
        '#include <stddef.h>\n#include "mt_kernels_s8.h"\nint32_t mt_s8_probe(int32_t i);\n'
        f"static const int32_t table[] = {{\n    {body}\n}};\n"
        "int32_t mt_s8_probe(int32_t i) { return table[i]; }\n"
    )
    lib = out_dir / "libs8_probe.so"
    subprocess.run(["gcc", *HOST_FLAGS, f"-I{INCLUDE}", str(src), "-o", str(lib)], check=True)
    fn = C.CDLL(str(lib)).mt_s8_probe
    fn.restype, fn.argtypes = i32, [i32]
    return [fn(i) for i in range(len(items))]


def abi_expected() -> list[int]:
    out = []
    for st in QSTRUCTS.values():
        out.append(C.sizeof(st))
        out += [getattr(st, f).offset for f, _ in st._fields_]
    return out


def _ptr(a: np.ndarray | None, ctype: object) -> object:
    if a is None:
        return None
    if not a.flags.c_contiguous:
        raise TypeError("expected a C-contiguous array")
    return a.ctypes.data_as(ctype)


def s8(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int8)


class S8Kernels:
    """The int8 kernels of a loaded runtime library, called with NumPy arrays and params dataclasses."""

    def __init__(self, lib: C.CDLL) -> None:
        self.lib = lib
        for name, (res, args) in PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
            setattr(self, name, fn)

    @staticmethod
    def params(p: P.Q8Params, begin: int = 0) -> tuple[C.Structure, list[np.ndarray]]:
        """The ctypes struct of ``p``; array fields start at element ``begin`` (a channel range). The
        returned arrays keep the pointed-to memory alive."""
        keep: list[np.ndarray] = []
        vals = {}
        for (name, ctype), (_, v) in zip(p.c_types(), p.c_fields(), strict=True):
            if ctype.endswith("*"):
                base = ctype.removeprefix("const ").removesuffix("*").strip()
                arr = np.ascontiguousarray(np.asarray(v, dtype=_NP[base])[begin:])
                keep.append(arr)
                vals[name] = arr.ctypes.data_as(C.POINTER(_POINTEES[base]))
            else:
                vals[name] = v
        return QSTRUCTS[p.ctype](**vals), keep

    # ---- calls: our layout in, our layout out -----------------------------------------------------

    def conv2d(self, dims: C.Structure, q: P.ConvQ8, x, w, b, ranges) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Output channels computed range by range (``ranges``: ``[(begin, end), ...]`` covering all)."""
        y = np.full((dims.out_c, dims.out_h, dims.out_w), 99, dtype=np.int8)  # every value is overwritten
        x, w = s8(x), s8(w)
        b = None if b is None else np.ascontiguousarray(b, dtype=np.int32)
        nbytes = self.mt_conv2d_fw_s8_scratch_bytes(dims)  # the host's reference leaves it untouched
        assert nbytes == conv2d_s8_scratch_bytes({f: getattr(dims, f) for f, _ in dims._fields_})
        scratch = np.full(max(nbytes, 1), 0x5A, dtype=np.uint8)
        for lo, hi in ranges:
            qs, _keep = self.params(q, lo)
            wr = np.ascontiguousarray(w[lo:hi])
            br = None if b is None else np.ascontiguousarray(b[lo:hi])
            args = (_ptr(x, i8p), _ptr(wr, i8p), _ptr(br, i32p), _ptr(y, i8p), _ptr(scratch, i8p))
            self.mt_conv2d_fw_s8(dims, qs, lo, hi, *args)
        assert np.all(scratch == 0x5A)
        return y

    def linear(self, dims: C.Structure, q: P.LinearQ8, x, w, b, ranges) -> np.ndarray:  # type: ignore[no-untyped-def]
        y = np.full((dims.out_features,), 99, dtype=np.int8)
        x, w = s8(x).reshape(-1), s8(w)
        b = None if b is None else np.ascontiguousarray(b, dtype=np.int32)
        assert self.mt_linear_fw_s8_scratch_bytes(dims) == 0
        for lo, hi in ranges:
            qs, _keep = self.params(q, lo)
            wr = np.ascontiguousarray(w[lo:hi])
            br = None if b is None else np.ascontiguousarray(b[lo:hi])
            self.mt_linear_fw_s8(
                dims, qs, lo, hi, _ptr(x, i8p), _ptr(wr, i8p), _ptr(br, i32p), _ptr(y, i8p), None
            )
        return y

    def add(self, q: P.AddQ8, a, b) -> np.ndarray:  # type: ignore[no-untyped-def]
        a, b = s8(a), s8(b)
        y = np.empty_like(a)
        qs, _keep = self.params(q)
        self.mt_add_fw_s8(qs, a.size, _ptr(a, i8p), _ptr(b, i8p), _ptr(y, i8p))
        return y

    def max_pool2d(self, dims: C.Structure, q: P.PoolQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        y = np.empty((dims.c, dims.out_h, dims.out_w), dtype=np.int8)
        qs, _keep = self.params(q)
        self.mt_max_pool2d_fw_s8(dims, qs, _ptr(s8(x), i8p), _ptr(y, i8p))
        return y

    def avg_pool2d(self, dims: C.Structure, q: P.PoolQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        y = np.empty((dims.c, dims.out_h, dims.out_w), dtype=np.int8)
        qs, _keep = self.params(q)
        self.mt_avg_pool2d_fw_s8(dims, qs, _ptr(s8(x), i8p), _ptr(y, i8p))
        return y

    def global_avg_pool(self, q: P.MeanQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = s8(x)
        y = np.empty((x.shape[0],), dtype=np.int8)
        qs, _keep = self.params(q)
        self.mt_global_avg_pool_fw_s8(qs, x.shape[0], x[0].size, _ptr(x, i8p), _ptr(y, i8p))
        return y

    def pad(self, dims: C.Structure, value: int, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        h, w = dims.in_h + dims.pad_top + dims.pad_bottom, dims.in_w + dims.pad_left + dims.pad_right
        y = np.empty((dims.c, h, w), dtype=np.int8)
        self.mt_pad_fw_s8(dims, value, _ptr(s8(x), i8p), _ptr(y, i8p))
        return y

    def concat(self, luts, xs) -> np.ndarray:  # type: ignore[no-untyped-def]
        xs = [s8(x) for x in xs]
        y = np.empty((sum(x.shape[0] for x in xs), *xs[0].shape[1:]), dtype=np.int8)
        off = 0
        for x, lut in zip(xs, luts, strict=True):
            table = None if lut is None else s8(np.asarray(lut))
            dst = y.reshape(-1)[off : off + x.size]
            self.mt_concat_fw_s8(_ptr(table, i8p), x.size, _ptr(x, i8p), dst.ctypes.data_as(i8p))
            off += x.size
        return y

    def softmax(self, q: P.SoftmaxQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = s8(x)
        y = np.empty_like(x)
        qs, _keep = self.params(q)
        self.mt_softmax_fw_s8(qs, x.size, _ptr(x, i8p), _ptr(y, i8p))
        return y

    def leaky_relu(self, q: P.LeakyReluQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = s8(x)
        y = np.empty_like(x)
        qs, _keep = self.params(q)
        self.mt_leaky_relu_fw_s8(qs, x.size, _ptr(x, i8p), _ptr(y, i8p))
        return y

    def logistic(self, lut, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = s8(x)
        y = np.empty_like(x)
        self.mt_logistic_fw_s8(_ptr(s8(np.asarray(lut)), i8p), x.size, _ptr(x, i8p), _ptr(y, i8p))
        return y

    def quantize(self, q: P.QuantizeQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(x.shape, dtype=np.int8)
        qs, _keep = self.params(q)
        self.mt_quantize_fw_s8(qs, x.size, _ptr(x, f32p), _ptr(y, i8p))
        return y

    def dequantize(self, q: P.QuantizeQ8, x) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = s8(x)
        y = np.empty(x.shape, dtype=np.float32)
        qs, _keep = self.params(q)
        self.mt_dequantize_fw_s8(qs, x.size, _ptr(x, i8p), _ptr(y, f32p))
        return y
