"""Build the C kernel runtime (firmware/runtime) into a host shared library and bind it with ctypes.

The ctypes structures and prototypes are derived from the op table (:mod:`mcutrain.core.op_table`,
:mod:`mcutrain.core.kernels`); ``test_build.py`` checks the structs' sizes and field offsets against the
header through a probe compiled from :func:`abi_probe_source`, and every prototype against the header.
"""

from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

from mcutrain.core import int8_params as P
from mcutrain.core.kernels import STEP_KERNELS, ZONE_DIMS, DimsStruct, scratch_query
from mcutrain.core.op_table import dims_structs, int8_kernels, op_kernels
from mcutrain.emit.c_text import C_WARNINGS

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "firmware" / "runtime"
INCLUDE = RUNTIME / "include"
SOURCES = sorted((RUNTIME / "src").glob("*.c"))

#: Warnings every kernel must compile clean with, on the host and for the MCU targets (one list: codegen).
WARN_FLAGS = list(C_WARNINGS)
#: Host build of the golden tests: no FMA contraction, so that results do not depend on the host CPU.
HOST_FLAGS = ["-O2", "-ffp-contract=off", *WARN_FLAGS, "-fPIC", "-shared"]
CM4F_FLAGS = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb", "-O2", *WARN_FLAGS]

i32 = C.c_int32
f32 = C.c_float
fp = C.POINTER(C.c_float)
u8p = C.POINTER(C.c_uint8)
size_t = C.c_size_t


def _dims(struct: DimsStruct) -> type[C.Structure]:
    return type(struct.ctype, (C.Structure,), {"_fields_": [(f, i32) for f in struct.fields]})


#: C struct name -> ctypes structure (every field is an int32_t), from the op table's dims structs.
STRUCTS: dict[str, type[C.Structure]] = {d.ctype: _dims(d) for d in [*dims_structs(), ZONE_DIMS]}

MT_ACT = {"relu": 0, "relu6": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}
_SCALARS = {
    "int32_t": i32,
    "int8_t": C.c_int8,
    "mt_act_t": i32,
    "float": f32,
    "size_t": size_t,
    "void": None,
}
_POINTEES = {
    "float": C.c_float,
    "uint8_t": C.c_uint8,
    "int8_t": C.c_int8,
    "int32_t": i32,
    "uint64_t": C.c_uint64,
}

#: The int8 kernels' params structs (mt_kernels_s8.h), from the dataclasses of core/int8_params.
Q8_PARAMS = (P.ConvQ8, P.LinearQ8, P.AddQ8, P.PoolQ8, P.MeanQ8, P.SoftmaxQ8, P.QuantizeQ8, P.LeakyReluQ8)


def _field_type(ctype: str) -> object:
    if ctype.endswith("*"):
        return C.POINTER(_POINTEES[ctype.removeprefix("const ").removesuffix("*").strip()])
    return _SCALARS[ctype]


#: C struct name -> ctypes structure of every int8 params struct.
QSTRUCTS: dict[str, type[C.Structure]] = {
    p.ctype: type(p.ctype, (C.Structure,), {"_fields_": [(n, _field_type(t)) for n, t in p.c_types()]})
    for p in Q8_PARAMS
}


def _ctype(ctype: str) -> object:
    if not ctype.endswith("*"):
        return _SCALARS[ctype]
    base = ctype.removeprefix("const ").removesuffix("*").strip()
    if base in STRUCTS:
        return C.POINTER(STRUCTS[base])
    if base in QSTRUCTS:
        return C.POINTER(QSTRUCTS[base])
    return C.POINTER(_POINTEES[base])


def _prototypes() -> dict[str, tuple[object, list]]:
    """Function name -> (restype, argtypes) of every kernel of the op table, float and int8, of the step
    kernels and of the scratch queries."""
    kernels = list({kn.name: kn for kn in [*op_kernels(), *int8_kernels(), *STEP_KERNELS.values()]}.values())
    kernels += [scratch_query(kn) for kn in kernels if any(p.name == "scratch" for p in kn.params)]
    return {kn.name: (_ctype(kn.returns), [_ctype(p.ctype) for p in kn.params]) for kn in kernels}


PROTOTYPES = _prototypes()


def abi_probe_source() -> str:
    """C source of ``mt_abi_probe(i)``: sizeof and field offsets of every dims struct, in STRUCTS order."""
    items = []
    for name, st in STRUCTS.items():
        items.append(f"sizeof({name})")
        items += [f"offsetof({name}, {f})" for f, _ in st._fields_]
    body = ",\n    ".join(f"(int32_t){e}" for e in items)
    return (
        '#include <stddef.h>\n#include "mt_kernels.h"\n'
        "int32_t mt_abi_probe(int32_t i);\n"
        f"static const int32_t table[] = {{\n    {body}\n}};\n"
        "int32_t mt_abi_probe(int32_t i) { return table[i]; }\n"
    )


def abi_expected() -> list[int]:
    out = []
    for st in STRUCTS.values():
        out.append(C.sizeof(st))
        out += [getattr(st, f).offset for f, _ in st._fields_]
    return out


def build(out_dir: Path) -> Path:
    """Compile all kernel sources (plus the ABI probe) into ``out_dir/libmt_kernels.so`` with host gcc."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / "abi_probe.c"
    probe.write_text(abi_probe_source())
    lib = out_dir / "libmt_kernels.so"
    cmd = ["gcc", *HOST_FLAGS, f"-I{INCLUDE}", *map(str, SOURCES), str(probe), "-o", str(lib), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the kernel library failed:\n{' '.join(cmd)}\n{res.stderr}")
    return lib


class Kernels:
    """The loaded library: ``k.mt_conv2d_fw_f32(...)`` with the prototypes above."""

    def __init__(self, path: Path) -> None:
        self.lib = C.CDLL(str(path))
        for name, (res, args) in PROTOTYPES.items():
            fn = getattr(self.lib, name)
            fn.restype = res
            fn.argtypes = args
            setattr(self, name, fn)
        self.lib.mt_abi_probe.restype = i32
        self.lib.mt_abi_probe.argtypes = [i32]

    @staticmethod
    def dims(struct: str, **fields: int) -> C.Structure:
        st = STRUCTS[struct]
        missing = {f for f, _ in st._fields_} - set(fields)
        if missing:
            raise TypeError(f"{struct}: missing fields {sorted(missing)}")
        return st(**{k: int(v) for k, v in fields.items()})


def ptr(a: np.ndarray | None):
    """A float* to a float32 C-contiguous array (None -> NULL)."""
    if a is None:
        return None
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise TypeError(f"expected a C-contiguous float32 array, got {a.dtype} {a.flags}")
    return a.ctypes.data_as(fp)


def u8ptr(a: np.ndarray):
    if a.dtype != np.uint8 or not a.flags.c_contiguous:
        raise TypeError("expected a C-contiguous uint8 array")
    return a.ctypes.data_as(u8p)


def scratch(nbytes: int) -> np.ndarray | None:
    """Exactly ``nbytes`` of scratch (float-aligned), or None (NULL) when the kernel needs none."""
    if nbytes == 0:
        return None
    if nbytes % 4:
        raise AssertionError(f"scratch size {nbytes} is not a whole number of floats")
    return np.full(nbytes // 4, np.nan, dtype=np.float32)


def convt_weight_to_c(w: np.ndarray, groups: int) -> np.ndarray:
    """PyTorch transposed-conv weight ``[Cin, Cout/G, kh, kw]`` -> the kernels' output-major
    ``[Cout, Cin/G, kh, kw]``. The inverse (reading trained weights back) is the same transpose."""
    cin, cout_g, kh, kw = w.shape
    cin_g = cin // groups
    return np.ascontiguousarray(
        w.reshape(groups, cin_g, cout_g, kh, kw)
        .transpose(0, 2, 1, 3, 4)
        .reshape(groups * cout_g, cin_g, kh, kw)
    )
