"""Build the C kernel runtime (firmware/runtime) into a host shared library and bind it with ctypes.

The ctypes structures mirror the dims structs of ``mt_kernels.h``; ``test_build.py`` checks their sizes
and field offsets against the header through a small probe compiled from :func:`abi_probe_source`.
"""

from __future__ import annotations

import ctypes as C
import subprocess
from pathlib import Path

import numpy as np

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


def _dims(name: str, fields: list[str]) -> type[C.Structure]:
    return type(name, (C.Structure,), {"_fields_": [(f, i32) for f in fields]})


# fmt: off
_CONV_FIELDS = [
    "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "kernel_h", "kernel_w",
    "stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left", "groups",
]
_POOL_FIELDS = [
    "c", "in_h", "in_w", "out_h", "out_w", "kernel_h", "kernel_w", "stride_h", "stride_w",
    "pad_top", "pad_left",
]
# fmt: on

#: C struct name -> ctypes structure (every field is an int32_t).
STRUCTS: dict[str, type[C.Structure]] = {
    "mt_conv2d_dims_t": _dims("Conv2dDims", _CONV_FIELDS),
    "mt_conv_transpose2d_dims_t": _dims("ConvTranspose2dDims", _CONV_FIELDS),
    "mt_linear_dims_t": _dims("LinearDims", ["in_features", "out_features"]),
    "mt_channel_affine_dims_t": _dims("ChannelAffineDims", ["c", "h", "w"]),
    "mt_max_pool2d_dims_t": _dims("MaxPool2dDims", _POOL_FIELDS),
    "mt_avg_pool2d_dims_t": _dims("AvgPool2dDims", [*_POOL_FIELDS, "count_include_pad"]),
    "mt_upsample_dims_t": _dims("UpsampleDims", ["c", "in_h", "in_w", "scale_h", "scale_w", "align_corners"]),
    "mt_pad_dims_t": _dims(
        "PadDims", ["c", "in_h", "in_w", "pad_top", "pad_bottom", "pad_left", "pad_right"]
    ),
    "mt_zone_dims_t": _dims("ZoneDims", ["h", "w", "top", "left", "zone_h", "zone_w", "rows", "cols"]),
}

MT_ACT = {"relu": 0, "relu6": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}


def _p(name: str) -> type:
    return C.POINTER(STRUCTS[name])


def _prototypes() -> dict[str, tuple[object, list]]:
    """Function name -> (restype, argtypes), as declared in mt_kernels.h."""
    protos: dict[str, tuple[object, list]] = {}
    for op, dims in (
        ("conv2d", "mt_conv2d_dims_t"),
        ("conv_transpose2d", "mt_conv_transpose2d_dims_t"),
        ("linear", "mt_linear_dims_t"),
    ):
        d = _p(dims)
        for ps in ("fw", "bw_wgrad", "bw_igrad"):
            protos[f"mt_{op}_{ps}_scratch_bytes"] = (size_t, [d])
        protos[f"mt_{op}_fw_f32"] = (None, [d, i32, i32, fp, fp, fp, fp, fp])
        protos[f"mt_{op}_bw_wgrad_f32"] = (None, [d, i32, i32, fp, fp, fp, fp, i32, fp])
        protos[f"mt_{op}_bw_igrad_f32"] = (None, [d, i32, i32, fp, fp, fp, i32, fp])
    d = _p("mt_channel_affine_dims_t")
    protos["mt_channel_affine_fw_f32"] = (None, [d, i32, i32, fp, fp, fp, fp])
    protos["mt_channel_affine_bw_wgrad_f32"] = (None, [d, i32, i32, fp, fp, fp, fp, i32])
    protos["mt_channel_affine_bw_igrad_f32"] = (None, [d, i32, i32, fp, fp, fp, i32])
    protos["mt_activation_fw_f32"] = (None, [i32, f32, i32, fp, fp])
    protos["mt_activation_mask_f32"] = (None, [i32, i32, fp, u8p])
    protos["mt_activation_bw_mask_f32"] = (None, [i32, f32, i32, u8p, fp, fp, i32])
    protos["mt_activation_bw_f32"] = (None, [i32, f32, i32, fp, fp, fp, i32])
    d = _p("mt_max_pool2d_dims_t")
    protos["mt_max_pool2d_fw_f32"] = (None, [d, fp, fp])
    protos["mt_max_pool2d_bw_igrad_f32"] = (None, [d, fp, fp, fp, i32])
    d = _p("mt_avg_pool2d_dims_t")
    protos["mt_avg_pool2d_fw_f32"] = (None, [d, fp, fp])
    protos["mt_avg_pool2d_bw_igrad_f32"] = (None, [d, fp, fp, i32])
    protos["mt_global_avg_pool_fw_f32"] = (None, [i32, i32, fp, fp])
    protos["mt_global_avg_pool_bw_igrad_f32"] = (None, [i32, i32, fp, fp, i32])
    protos["mt_global_max_pool_fw_f32"] = (None, [i32, i32, fp, fp])
    protos["mt_global_max_pool_bw_igrad_f32"] = (None, [i32, i32, fp, fp, fp, i32])
    protos["mt_add_fw_f32"] = (None, [i32, fp, fp, fp])
    protos["mt_copy_f32"] = (None, [i32, fp, fp])
    protos["mt_accumulate_f32"] = (None, [i32, fp, fp, i32])
    protos["mt_scale_f32"] = (None, [i32, fp, f32])
    d = _p("mt_upsample_dims_t")
    for mode in ("nearest", "bilinear"):
        protos[f"mt_upsample_{mode}_fw_f32"] = (None, [d, fp, fp])
        protos[f"mt_upsample_{mode}_bw_igrad_f32"] = (None, [d, fp, fp, i32])
    d = _p("mt_pad_dims_t")
    protos["mt_pad_fw_f32"] = (None, [d, f32, fp, fp])
    protos["mt_pad_bw_igrad_f32"] = (None, [d, fp, fp, i32])
    protos["mt_softmax_fw_f32"] = (None, [i32, fp, fp])
    protos["mt_softmax_bw_igrad_f32"] = (None, [i32, fp, fp, fp, i32])
    protos["mt_loss_softmax_xent_f32"] = (f32, [i32, fp, fp, fp])
    for loss in ("mse", "l1", "berhu"):
        protos[f"mt_loss_{loss}_f32"] = (f32, [i32, fp, fp, fp, fp])
    d = _p("mt_zone_dims_t")
    protos["mt_zone_pool_fw_f32"] = (None, [d, fp, fp])
    protos["mt_zone_pool_bw_f32"] = (None, [d, fp, fp, i32])
    protos["mt_sgd_f32"] = (None, [i32, fp, fp, f32, f32])
    protos["mt_sgd_momentum_f32"] = (None, [i32, fp, fp, fp, f32, f32, f32])
    protos["mt_adam_f32"] = (None, [i32, fp, fp, fp, fp, f32, f32, f32, f32, f32, i32])
    return protos


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
